"""Encrypts BMC credentials at rest (Fernet, keyed by `NICO_SECRET_KEY`)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypt/decrypt short secrets; the key never leaves this object."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            # Never include the token or key in the message.
            raise ValueError("stored credential cannot be decrypted with NICO_SECRET_KEY") from exc

    def __repr__(self) -> str:
        return "SecretBox(<redacted>)"
