"""Keyed, deterministic replacements: UIDs, pseudonyms, date offsets and file digests.

Everything is derived with HMAC-SHA256 under the project secret, so the same original gives
the same replacement in every file, series and run that uses the same key, and nobody without
the key can recompute (or confirm a guess of) an original from its replacement.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from pathlib import Path

from medseg.core import ConfigError

MIN_KEY_BYTES = 16
_LETTERS = string.ascii_uppercase
KEY_HELP = (
    'create one with: python -c "import secrets; print(secrets.token_hex(32))" > deid.key '
    "&& chmod 600 deid.key"
)


class DeidKey:
    """The project secret and everything derived from it.

    Parameters
    ----------
    secret
        At least 16 bytes. It is never written anywhere by medseg.
    """

    __slots__ = ("_secret", "_uid_cache")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(
                f"the de-identification key must be at least {MIN_KEY_BYTES} bytes, "
                f"not {len(secret)}; {KEY_HELP}"
            )
        self._secret = secret
        self._uid_cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return "DeidKey(<secret>)"

    def __reduce__(self) -> tuple[type[DeidKey], tuple[bytes]]:
        return (DeidKey, (self._secret,))

    def _digest(self, purpose: bytes, value: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\x00" + value, hashlib.sha256).digest()

    def replace_uid(self, uid: str) -> str:
        """Return ``2.25.<int>`` for ``uid``: a UUID (RFC 9562 version 8) from its keyed digest.

        The integer is the 128-bit UUID (at most 39 digits) so the UID is at most 44 characters.
        """
        cached = self._uid_cache.get(uid)
        if cached is None:
            raw = bytearray(self._digest(b"uid", uid.encode("ascii", "replace"))[:16])
            raw[6] = (raw[6] & 0x0F) | 0x80  # version 8 (custom)
            raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
            cached = f"2.25.{int.from_bytes(raw, 'big')}"
            self._uid_cache[uid] = cached
        return cached

    def make_pseudonym(self, identity: str, *, length: int = 16) -> str:
        """Return ``length`` upper-case letters derived from ``identity`` (no digits).

        Letters only: a pseudonym can never contain an original numeric identifier or date.
        """
        digest = self._digest(b"pseudonym", identity.encode("utf-8"))
        number = int.from_bytes(digest, "big")
        letters = []
        for _ in range(length):
            number, index = divmod(number, 26)
            letters.append(_LETTERS[index])
        return "".join(letters)

    def compute_date_offset_days(self, identity: str, *, min_days: int, max_days: int) -> int:
        """Return the per-patient date offset in days, in ``[min_days, max_days]``."""
        digest = self._digest(b"date-offset", identity.encode("utf-8"))
        span = max_days - min_days + 1
        return min_days + int.from_bytes(digest[:8], "big") % span

    def digest_bytes(self, data: bytes) -> str:
        """Keyed hex digest of file content (the audit's input hash; unlinkable without key)."""
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()


def load_deid_key(*, key_file: Path | None = None, env_value: str | None = None) -> DeidKey:
    """Build the key from a key file or the value of an environment variable.

    Parameters
    ----------
    key_file
        File holding the secret (surrounding whitespace is stripped).
    env_value
        The secret itself, as read by the caller from an environment variable.

    Raises
    ------
    ConfigError
        If neither or both are given, the file cannot be read, or the secret is too short.
    """
    if (key_file is None) == (env_value is None):
        raise ConfigError(f"give exactly one key source (--key-file or --key-env); {KEY_HELP}")
    if key_file is not None:
        try:
            secret = key_file.read_bytes().strip()
        except OSError as err:
            raise ConfigError(f"cannot read the key file ({err.strerror})", path=key_file) from err
    else:
        secret = (env_value or "").strip().encode("utf-8")
    return DeidKey(secret)
