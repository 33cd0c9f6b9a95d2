"""ISO BMFF box definitions both the readers (:mod:`origin.core.mp4`) and the writers
(:mod:`origin.core.mux`) use: field widths, ``tfhd``/``trun`` flag bits, sample flags, Smooth's
``tfxd``.

One definition each, so a reader and a writer cannot disagree on a bit.
"""

from __future__ import annotations

# Field widths: the range a box field of each kind holds.
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
U32_MAX = 2**32 - 1
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1

# tfhd flags (ISO/IEC 14496-12 §8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
TFHD_DURATION_IS_EMPTY = 0x010000
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# The optional tfhd fields after track_ID, in order: (flag, size in bytes).
TFHD_OPTIONAL = (
    (TFHD_BASE_DATA_OFFSET, 8),
    (TFHD_DESCRIPTION_INDEX, 4),
    (TFHD_DEFAULT_DURATION, 4),
    (TFHD_DEFAULT_SIZE, 4),
    (TFHD_DEFAULT_FLAGS, 4),
)

# trun flags (§8.8.8.1)
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_FLAGS = 0x000004
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_CTO = 0x000800

# Sample flags (§8.8.3.1): sync = depends on nothing (sample_depends_on=2); non-sync = depends on
# others (1) and sample_is_non_sync_sample. A reader treats either non-sync bit as not a keyframe
# (as ffmpeg's mov demuxer does).
SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000

# Smooth Streaming (MS-SSTR §2.2.4): times in fragments and manifests are in 100 ns units, and
# the TfxdBox (a 'uuid' box of this user type) carries a fragment's absolute time and duration.
SMOOTH_TIMESCALE = 10_000_000
TFXD_UUID = bytes.fromhex("6D1D9B0542D544E680E2141DAFF757B2")
# TfrfBox (MS-SSTR 2.2.4.5): in a live fragment, the times and durations of the next fragments.
TFRF_UUID = bytes.fromhex("D4807EF2CA3946958E5426CB9E46A79F")

# Common Encryption (ISO/IEC 23001-7) and PIFF 1.1 (the Smooth Streaming form of the same).
PIFF_SENC_UUID = bytes.fromhex("A2394F525A9B4F14A2446C427C648DF4")  # PIFF SampleEncryptionBox
SENC_SUBSAMPLES = 0x000002  # senc flag: per-sample subsample tables follow the IVs
# DRM system ids (the pssh SystemID, DASH ContentProtection urn:uuid:, Smooth ProtectionHeader).
SYSTEM_COMMON = bytes.fromhex("1077EFECC0B24D02ACE33C1E52E2FB4B")  # W3C Common PSSH (ClearKey)
SYSTEM_CLEARKEY_DASH = bytes.fromhex("E2719D58A985B3C9781AB030AF78D30E")  # DASH-IF ClearKey
SYSTEM_WIDEVINE = bytes.fromhex("EDEF8BA979D64ACEA3C827DCD51D21ED")
SYSTEM_PLAYREADY = bytes.fromhex("9A04F07998404286AB92E65BE0885F95")
