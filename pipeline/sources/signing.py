"""Asset href signing (Planetary Computer SAS tokens), applied by every source to what a search returns.

Signed at search time, not when a catalog or index is loaded: an index is parsed once per worker process and a
run lasts days, while a token lasts about an hour (``planetary_computer`` caches tokens and renews them before
they expire). Only Azure Blob Storage hrefs change; local files and other URLs are returned as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pipeline.errors import SourceError
from pipeline.sources.base import SceneRef

Signer = Callable[[str], str]


def href_signer(sign: str) -> Signer | None:
    """The signer named by ``source.sign`` (None for 'none')."""
    if sign == "none":
        return None
    if sign != "planetary-computer":
        raise SourceError(f"source.sign {sign!r} is unknown; use 'none' or 'planetary-computer'")
    try:
        from planetary_computer.sas import sign_url
    except ImportError:
        raise SourceError("source.sign is 'planetary-computer' but the package is missing; "
                          "run 'pip install planetary-computer' (or the project's [pc] extra)") from None
    return sign_url


def signed(refs: list[SceneRef], signer: Signer | None) -> list[SceneRef]:
    """``refs`` with every asset href signed; a failure to get a token is a (retried) source error."""
    if signer is None:
        return refs
    try:
        return [replace(r, assets=tuple(replace(a, href=signer(a.href)) for a in r.assets)) for r in refs]
    except Exception as e:  # the token service: network errors, HTTP errors after its own retries
        raise SourceError(f"cannot sign asset hrefs ({type(e).__name__}: {str(e)[:160]}); check that the "
                          "signing service is reachable, or set source.sign: none") from None
