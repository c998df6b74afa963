"""Old public names kept for one release: reading one warns and returns the new object."""

import warnings
from collections.abc import Callable


def aliases(module: dict, renamed: dict[str, str],
            moved: dict[str, tuple[object, str]] | None = None) -> Callable[[str], object]:
    """A module ``__getattr__`` for `module` (its ``globals()``) serving each old name of
    `renamed` (old -> new name in the same module) as the new object, and each old name of
    `moved` (old -> (object, where its replacement lives)) as that object, with a
    ``DeprecationWarning`` naming the replacement."""
    where = module["__name__"]
    moved = moved or {}

    def __getattr__(name: str):
        if name in renamed:
            obj, now = module[renamed[name]], f"{where}.{renamed[name]}"
        elif name in moved:
            obj, now = moved[name]
        else:
            raise AttributeError(f"module {where!r} has no attribute {name!r}")
        warnings.warn(f"`{where}.{name}` is deprecated: use `{now}`.", DeprecationWarning,
                      stacklevel=2)
        return obj

    return __getattr__
