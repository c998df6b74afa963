"""Old public names kept for one release: reading one warns and returns the new object."""

import warnings
from collections.abc import Callable


def aliases(module: dict, renamed: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for `module` (its ``globals()``) serving each old name of
    `renamed` (old -> new) as the new one, with a ``DeprecationWarning`` naming the new one."""
    where = module["__name__"]

    def __getattr__(name: str):
        if name in renamed:
            new = renamed[name]
            warnings.warn(f"`{where}.{name}` is deprecated: use `{where}.{new}`.",
                          DeprecationWarning, stacklevel=2)
            return module[new]
        raise AttributeError(f"module {where!r} has no attribute {name!r}")

    return __getattr__
