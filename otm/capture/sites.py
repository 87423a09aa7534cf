"""Where an SDK defines the classes otm patches, and patching each one as the SDK loads it.

An SDK may load its resource classes long after ``import sdk``: openai loads
``openai.resources.chat`` when a client first reads ``client.chat``, and
importing every resource otm patches (with the hundreds of type modules
behind them) at ``instrument()`` costs more than the program's own
``import openai``. So a :class:`Site` names a class by the package it is
defined in or under (the package the SDK re-exports it from; the files
inside have moved between SDK versions) and by its name, and :func:`install`
patches the classes loaded already and watches the packages of the others
(:func:`otm.capture.imports.watch`): each is patched right after its module
has executed, before the SDK hands the class to the program. Nothing is
added to a call: the patched methods are the same as if patched at once.

:func:`targets_of` is the eager form (imports every site): what an adapter's
``targets()`` returns.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from otm._log import log_once
from otm.capture import imports
from otm.capture.patching import Target, registry


class Site(NamedTuple):
    """A class to patch: the one named ``name`` defined in ``package`` or a module under it."""

    package: str
    """The module or package that defines the class or re-exports it (``openai.resources.chat``)."""
    name: str
    """The class name (``Completions``)."""
    targets: Callable[[type], list[Target]]
    """The (class, method, wrapper) triples to patch on the class, with fresh wrappers."""
    optional: bool = False
    """Absent from some SDK versions: its absence is not worth a log line."""


_lock = threading.Lock()
_waiting: dict[str, dict[str, list[Site]]] = {}
"""provider -> package -> the sites whose class has not been loaded yet."""


def _defined_in(module: Any, name: str) -> type | None:
    """The class ``name`` if ``module`` defines it (not one it imported from elsewhere)."""
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return None
    cls = namespace.get(name)
    if isinstance(cls, type) and cls.__module__ == getattr(module, "__name__", None):
        return cls
    return None


def _loaded_under(packages: list[str]) -> dict[str, list[ModuleType]]:
    """The modules imported already in or under each package (one pass over sys.modules,
    which an SDK fills with thousands of names)."""
    out: dict[str, list[ModuleType]] = {p: [] for p in packages}
    modules = sys.modules
    prefixes = tuple(packages)
    for name in [n for n in list(modules) if n.startswith(prefixes)]:
        module = modules.get(name)
        if module is None:
            continue
        for package in packages:
            if name == package or name.startswith(package + "."):
                out[package].append(module)
    return out


def install(provider: str, sites: list[Site]) -> int:
    """Patch each site's class that is loaded already; watch the packages of the others.

    Marks ``provider`` as instrumented in the patch registry; returns how many
    methods were patched now.
    """
    groups: dict[str, list[Site]] = {}
    for site in sites:
        groups.setdefault(site.package, []).append(site)
    packages = {package: list(group) for package, group in groups.items()}
    with _lock:
        _waiting[provider] = groups
    registry.install(provider, [])
    # Watch first, then look at what is loaded: a module another thread imports
    # meanwhile is caught by one or the other (a class is taken once).
    for package in packages:
        imports.watch(package, functools.partial(_on_import, provider, package))
    found: list[Target] = []
    for package, modules in _loaded_under(list(packages)).items():
        found += _take(provider, package, modules)
    n = registry.extend(provider, found)
    for package, group in packages.items():
        with _lock:
            waiting = package in _waiting.get(provider, {})
        if waiting:
            _check_exists(package, group)
        else:
            imports.unwatch(package)
    return n


def uninstall(provider: str) -> None:
    """Stop watching for ``provider``'s classes (the registry undoes its patches)."""
    with _lock:
        groups = _waiting.pop(provider, {})
    for package in groups:
        imports.unwatch(package)


def _on_import(provider: str, package: str, module: ModuleType) -> None:
    """A module under a watched package has executed: patch the classes it defines."""
    targets = _take(provider, package, [module])
    if targets:
        registry.extend(provider, targets)
    with _lock:
        done = package not in _waiting.get(provider, {})
    if done:
        imports.unwatch(package)


def _take(provider: str, package: str, modules: list[ModuleType]) -> list[Target]:
    """The targets of the sites of ``package`` whose class one of ``modules`` defines
    (those sites stop waiting)."""
    found: list[tuple[Site, type]] = []
    with _lock:
        groups = _waiting.get(provider)
        group = None if groups is None else groups.get(package)
        if not group:
            return []
        for site in list(group):
            for module in modules:
                cls = _defined_in(module, site.name)
                if cls is not None:
                    found.append((site, cls))
                    group.remove(site)
                    break
        if not group:
            del groups[package]  # type: ignore[union-attr]
    out: list[Target] = []
    for site, cls in found:
        try:
            out += site.targets(cls)
        except Exception as exc:
            log_once(f"targets of {site.package}.{site.name}", exc)
    return out


def _check_exists(package: str, sites: list[Site]) -> None:
    """Say once if a package otm waits for is not in the installed SDK (a layout change),
    when that can be told without importing anything."""
    if all(site.optional for site in sites):
        return
    parent = package.rpartition(".")[0]
    if not parent or parent not in sys.modules:
        return
    try:
        missing = importlib.util.find_spec(package) is None
    except Exception:  # a parent that is not a package, an odd finder: cannot tell
        return
    if missing:
        log_once(
            f"site {package}",
            message=f"otm: {package} not found; its calls are not captured",
        )


def find(site: Site) -> type | None:
    """The site's class, importing its package if needed (through its re-export)."""
    try:
        module = importlib.import_module(site.package)
        cls = getattr(module, site.name, None)
    except ImportError:
        cls = None
    except Exception as exc:
        log_once(f"site {site.package}", exc)
        return None
    if isinstance(cls, type):
        return cls
    if not site.optional:
        log_once(
            f"site {site.package}",
            message=f"otm: {site.package}.{site.name} not found; its calls are not captured",
        )
    return None


def targets_of(sites: list[Site]) -> list[Target]:
    """Every site's targets whose method the class defines, importing what is not
    loaded yet (the eager form)."""
    out: list[Target] = []
    for site in sites:
        cls = find(site)
        if cls is not None:
            out += [t for t in site.targets(cls) if t[1] in cls.__dict__]
    return out


__all__ = ["Site", "find", "install", "targets_of", "uninstall"]
