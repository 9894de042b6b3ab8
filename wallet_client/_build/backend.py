"""The build backend of the client package: setuptools, after generating the `wallet.v1`
stubs from ../protos into _gen/ (the `wallet` package of the distribution), and removing
what the build left in this directory afterwards. A tree that already holds _gen/ (an
unpacked sdist, which has no ../protos) is built as it is."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from setuptools import build_meta

HERE = Path(__file__).resolve().parents[1]
PROTOS = HERE.parent / "protos"
GEN = HERE / "_gen"
PROTO = "wallet/v1/wallet.proto"
T = TypeVar("T")


def _plugin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(f"{name} not found: install mypy-protobuf (a build requirement)")
    return found


def _generate() -> None:
    from grpc_tools import protoc  # a build requirement, imported only when building

    if not (PROTOS / PROTO).exists():
        raise RuntimeError(f"{PROTOS / PROTO} not found: build from the repository checkout")
    GEN.mkdir()
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{resources.files('grpc_tools') / '_proto'}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={GEN}",
        f"--grpc_python_out={GEN}",
        f"--mypy_out={GEN}",
        f"--mypy_grpc_out={GEN}",
        PROTO,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    for package in ("wallet", "wallet/v1"):
        (GEN / package / "__init__.py").touch()


@contextmanager
def _stubs() -> Iterator[None]:
    generated = not GEN.exists()
    if generated:
        _generate()
    try:
        yield
    finally:
        for leftover in ("build", "wallet_client.egg-info"):
            shutil.rmtree(HERE / leftover, ignore_errors=True)
        if generated:
            shutil.rmtree(GEN, ignore_errors=True)


def _with_stubs(hook: Callable[..., T]) -> Callable[..., T]:
    def wrapped(*args: Any, **kwargs: Any) -> T:
        with _stubs():
            return hook(*args, **kwargs)

    wrapped.__name__ = hook.__name__
    return wrapped


get_requires_for_build_wheel = build_meta.get_requires_for_build_wheel
get_requires_for_build_sdist = build_meta.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = _with_stubs(build_meta.prepare_metadata_for_build_wheel)
build_wheel = _with_stubs(build_meta.build_wheel)
build_sdist = _with_stubs(build_meta.build_sdist)
