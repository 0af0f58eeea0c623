"""The package's PEP 517 backend: maturin's, with pyproject.toml's
`[tool.maturin] compatibility` applied to `pip wheel` and `pip install`
too.

maturin's own backend gives every build it is asked for `--compatibility
off` (the plain `linux` tag, a wheel for the machine that built it) unless
MATURIN_PEP517_ARGS or a config setting names a compatibility, so the
policy in pyproject.toml would reach only `maturin build`. This passes it
on. A compatibility given in MATURIN_PEP517_ARGS or `-C
maturin.build-args=...` (`--zig --compatibility manylinux2014`) still
wins; editable installs stay maturin's."""

from typing import Any, Mapping, Optional

import maturin
from maturin import (  # noqa: F401  (hooks used as maturin has them)
    build_editable,
    build_sdist,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    args = maturin.get_maturin_pep517_args(config_settings)
    policy = maturin.get_config().get("compatibility")
    if policy and not any(arg.startswith(("--compatibility", "--manylinux")) for arg in args):
        args = ["--compatibility", policy, *args]
    settings = dict(config_settings or {})
    settings["maturin.build-args"] = args
    return maturin.build_wheel(wheel_directory, settings, metadata_directory)
