"""Renamed public names: the old name still works for one release, with a warning naming the
new one."""

import pytest

import flowjax_lab as fl

RENAMED = [  # (module, old name, new name)
    (fl.fields, "Potential", "OTFlowPotential"),
    (fl.clustering, "interaction_energy", "attention_energy"),
    (fl.transport, "gaussian_w2", "gaussian_w2_squared"),
    (fl.learn, "depth_control_loss", "DepthControlLoss"),
]


@pytest.mark.parametrize("module, old, new", RENAMED)
def test_old_name_warns_and_is_the_new_object(module, old, new):
    with pytest.warns(DeprecationWarning, match=f"use `{module.__name__}.{new}`"):
        assert getattr(module, old) is getattr(module, new)


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Potentials'"):
        fl.fields.Potentials  # noqa: B018


def test_moved_function_warns_and_gives_the_method_value():
    import jax

    potential = fl.fields.OTFlowPotential(2, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 2))
    with pytest.warns(DeprecationWarning, match="use `OTFlowPotential.autodiff_laplacian`"):
        old = fl.fields.autodiff_laplacian
    assert (old(potential, 0.3, x) == potential.autodiff_laplacian(0.3, x)).all()
