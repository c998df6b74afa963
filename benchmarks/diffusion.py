"""Diffusion sampling throughput: DDIM, the reverse SDE by Euler-Maruyama and EDM's Heun sampler.

One noise-prediction MLP (inputs x and t, 2-128-128-2 with tanh; the same random weights on every
side), the VP process (beta from 0.1 to 20), n particles from N(0, I) at t = 1 down to
t_min = 1e-3, float32. Ours: ``diffusion.ddim``, ``diffusion.sample_reverse_sde`` and
``diffusion.heun_edm`` through their public calls (checks included). Peers: a plain torch loop of
the same steps on the same grid with the same weights (torch's default threads and one thread),
and for DDIM the loop of diffusers' ``DDIMScheduler`` (its discrete linear-beta schedule
1e-4 .. 0.02 over 1000 steps, the discrete form of the same VP process, on its own "leading"
grid). Baseline: ours, per sampler. For the deterministic samplers the rows record the largest
difference of the torch loop's samples from ours (same grid, same start). Peers are measured only
when torch (and diffusers) import; nothing is installed here.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import flowjax_lab as fl

from . import _harness as H

WIDTH, DEPTH, T_MIN = 128, 2, 1e-3
SAMPLERS = ("ddim", "euler_maruyama", "heun_edm")


class EpsMLP(eqx.Module):
    """``eps(t, x) = MLP([x, t])`` on a cloud `(n, 2)`."""

    mlp: eqx.nn.MLP

    def __call__(self, t, x):
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])[:, None]
        return jax.vmap(self.mlp)(jnp.concatenate([x, t], axis=1))


def _model():
    mlp = eqx.nn.MLP(3, 2, WIDTH, DEPTH, activation=jnp.tanh, key=jax.random.key(0),
                     dtype=jnp.float32)
    return EpsMLP(mlp)


def _ours(name, model, process, x, steps):
    d = fl.diffusion
    if name == "ddim":
        return lambda: d.ddim(model, process, x, prediction="eps", steps=steps, t_min=T_MIN).x
    if name == "heun_edm":
        return lambda: d.heun_edm(model, process, x, prediction="eps", steps=steps,
                                  t_min=T_MIN).x
    key = jax.random.key(1)
    return lambda: d.sample_reverse_sde(model, process, x, key, prediction="eps", steps=steps,
                                        t_min=T_MIN).x


def _torch_mlp(model):
    import torch

    layers = []
    for i, layer in enumerate(model.mlp.layers):
        linear = torch.nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(layer.weight)))
            linear.bias.copy_(torch.from_numpy(np.array(layer.bias)))
        layers += [linear] if i == len(model.mlp.layers) - 1 else [linear, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers)


def _torch_loop(name, net, process, x, steps, threads):
    """The same steps as ours, on the same grid, in plain torch (float32)."""
    import torch

    spacing = "edm" if name == "heun_edm" else "uniform"
    ts = np.asarray(fl.diffusion.time_grid(process, steps, spacing=spacing, t_min=T_MIN))
    coef = {k: torch.tensor(np.asarray(getattr(process, k)(ts)), dtype=torch.float32)
            for k in ("alpha", "sigma", "f", "g2")}
    times = torch.tensor(ts, dtype=torch.float32)
    x0 = torch.from_numpy(np.array(x))

    def eps(i, y):
        return net(torch.cat([y, times[i].expand(y.shape[0], 1)], dim=1))

    def run():
        torch.set_num_threads(threads)
        generator = torch.Generator().manual_seed(1)
        a, s, y = coef["alpha"], coef["sigma"], x0
        with torch.inference_mode():
            for i in range(steps):
                e = eps(i, y)
                if name == "euler_maruyama":  # in t, h < 0: x + h (f x + g^2 eps / sigma) + noise
                    h = times[i + 1] - times[i]
                    z = torch.randn(y.shape, generator=generator)
                    y = (y + h * (coef["f"][i] * y + coef["g2"][i] * e / s[i])
                         + torch.sqrt(-h * coef["g2"][i]) * z)
                    continue
                euler = a[i + 1] * (y - s[i] * e) / a[i] + s[i + 1] * e
                if name == "ddim":
                    y = euler
                    continue
                e2 = eps(i + 1, euler)
                y = euler + (s[i + 1] - a[i + 1] * s[i] / a[i]) * (e2 - e) / 2
        return y

    return run


def _diffusers_loop(net, x, steps, threads):
    import torch
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)
    x0 = torch.from_numpy(np.array(x))

    def run():
        torch.set_num_threads(threads)
        y = x0
        with torch.inference_mode():
            for t in scheduler.timesteps:
                tt = torch.full((y.shape[0], 1), float(t) / 1000)
                e = net(torch.cat([y, tt], dim=1))
                y = scheduler.step(e, t, y, eta=0.0).prev_sample
        return y

    return run


def _missing(module: str) -> str | None:
    try:
        __import__(module)
    except Exception as err:  # noqa: BLE001 - any import failure means: no peer
        return f"{module} not importable ({type(err).__name__}: {err})"
    return None


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (3 if quick else 5)
    n, steps = (1024, 8) if quick else (10000, 50)
    process = fl.diffusion.VP()
    model = _model()
    x = jax.random.normal(jax.random.key(2), (n, 2), jnp.float32)
    no_torch, no_diffusers = _missing("torch"), _missing("diffusers")
    if no_torch is None:
        import torch

        default_threads = torch.get_num_threads()  # before any loop sets it
        net = _torch_mlp(model)
    out = []
    for name in SAMPLERS:
        nfe = 2 * steps if name == "heun_edm" else steps
        group = f"diffusion {name}"
        sizes = {"n": n, "steps": steps, "nfe": nfe, "width": WIDTH, "depth": DEPTH}
        fns, syncs = {f"flowjax_lab {name}": _ours(name, model, process, x, steps)}, {}
        if no_torch is None:
            for threads in (default_threads, 1):
                label = f"torch loop ({threads} thread{'s' * (threads > 1)})"
                fns[label] = _torch_loop(name, net, process, x, steps, threads)
                syncs[label] = lambda y: y
            if name == "ddim" and no_diffusers is None:
                label = f"diffusers DDIMScheduler ({default_threads} threads)"
                fns[label] = _diffusers_loop(net, x, steps, default_threads)
                syncs[label] = lambda y: y
        timed = H.time_interleaved(fns, repeats=repeats, syncs=syncs)
        ours = np.asarray(timed[f"flowjax_lab {name}"][1])
        for impl, (timing, value) in timed.items():
            extra = {}
            if impl.startswith("torch") and name != "euler_maruyama":
                extra["max_abs_diff_vs_ours"] = float(np.max(np.abs(value.numpy() - ours)))
            out.append(H.row(group=group, name="diffusion sampling", impl=impl, timing=timing,
                             sizes=sizes, dtype="float32", baseline=impl.startswith("flowjax"),
                             throughput=(n, "samples/s"), extra=extra))
        for peer, why in (("torch loop", no_torch), ("diffusers DDIMScheduler", no_diffusers)):
            if why is not None and (peer == "torch loop" or name == "ddim"):
                out.append(H.skipped(group=group, name="diffusion sampling", impl=peer,
                                     sizes=sizes, dtype="float32", why=why))
    return out
