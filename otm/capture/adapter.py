"""The contract every SDK adapter (``openai_sdk``, ``anthropic_sdk``, ``google_sdk``) meets.

An adapter is a module; :func:`otm.capture.instrument` and :func:`otm.capture.wrap`
use only what this Protocol names. ``tests/test_capture_adapters.py`` checks
the three modules against it (mypy too: each module is assigned to a variable
of this type below, under ``TYPE_CHECKING``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from otm.capture.attribution import Host
from otm.capture.patching import Target

if TYPE_CHECKING:
    from otm.capture.sites import Site


class SdkAdapter(Protocol):
    """What capture needs from the adapter of one SDK."""

    PROVIDER: str
    """The provider name of a client of this SDK on its vendor's own API."""

    def sites(self) -> list[Site]:
        """Every class to patch, by where the SDK defines it, with fresh wrappers:
        ``instrument()`` patches each one when the SDK loads it (at once if it has),
        ``uninstrument()`` removes them through the patch registry."""
        ...

    def targets(self) -> list[Target]:
        """Every method to patch, with fresh wrappers, importing the classes the SDK
        has not loaded yet (what :meth:`sites` resolves to)."""
        ...

    def owns(self, client: Any) -> bool:
        """Whether ``client`` is a client of this SDK (``wrap()`` picks the adapter so)."""
        ...

    def detect_host(self, client: Any) -> Host:
        """What ``client``'s class and base URL say of the provider (the model settles
        it per call: :func:`otm.data.attribute_provider`)."""
        ...

    def settings_keys(self, client: Any) -> list[object]:
        """What ``wrap()`` keys the client's settings on (the client, and the inner
        object its resources reach it through)."""
        ...

    def model_bases(self) -> tuple[type, ...]:
        """The SDK's response model base classes: ``.otm`` on their instances stays
        out of ``vars()``, ``dict()`` and iteration (see ``records.RecordAttribute``)."""
        ...


if TYPE_CHECKING:  # mypy checks that each adapter module satisfies the Protocol
    from otm.capture import anthropic_sdk, google_sdk, openai_sdk

    _openai: SdkAdapter = openai_sdk
    _anthropic: SdkAdapter = anthropic_sdk
    _google: SdkAdapter = google_sdk
