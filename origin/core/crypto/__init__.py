"""Encryption: HLS AES-128 whole-segment CBC (later CENC and storage CTR)."""

from origin.core.crypto.aes128 import Aes128Cbc, decrypt, padded_size, sequence_iv

__all__ = ["Aes128Cbc", "decrypt", "padded_size", "sequence_iv"]
