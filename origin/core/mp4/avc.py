"""H.264 bitstream syntax (ITU-T H.264 §7.3): the parameter sets and the slice header, read far
enough to know where a slice's header ends and its data begins.

Common Encryption leaves a VCL NAL unit's header and slice header clear and encrypts the slice
data (ISO/IEC 23001-7 §10.2, §10.4.2): a decoder (or a secure pipeline) parses the header before
decryption. :func:`slice_header_size` gives that length in NAL bytes, emulation prevention bytes
included. The parameter sets are parsed once per track (:func:`parse_parameter_sets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from origin.core.errors import MediaError
from origin.core.mp4.bits import Bits

# NAL unit types (Table 7-1).
NAL_SLICE = 1
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
VCL_TYPES = frozenset(range(1, 6))

# profile_idc values whose SPS carries chroma_format_idc and the bit depths (§7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})

SLICE_P, SLICE_B, SLICE_I, SLICE_SP, SLICE_SI = range(5)  # slice_type % 5


def _bits(rbsp: bytes) -> Bits:
    return Bits(rbsp, "H.264 syntax")


def unescape(nal: bytes | memoryview) -> tuple[bytes, list[int]]:
    """The RBSP of NAL bytes (emulation prevention ``00 00 03`` → ``00 00``), and the NAL
    positions of the bytes removed."""
    data = bytes(nal)
    removed: list[int] = []
    out = bytearray()
    start = 0
    pos = data.find(b"\x00\x00\x03")
    while pos >= 0:
        out += data[start : pos + 2]
        removed.append(pos + 2)
        start = pos + 3
        pos = data.find(b"\x00\x00\x03", start)
    out += data[start:]
    return bytes(out), removed


@dataclass(frozen=True, slots=True)
class Sps:
    separate_colour_plane: bool
    chroma_array_type: int
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    frame_mbs_only: bool
    pic_size_in_map_units: int


@dataclass(frozen=True, slots=True)
class Pps:
    sps_id: int
    entropy_coding_mode: bool
    bottom_field_pic_order_in_frame_present: bool
    num_slice_groups: int
    slice_group_map_type: int
    slice_group_change_rate: int
    num_ref_idx_l0_default: int
    num_ref_idx_l1_default: int
    weighted_pred: bool
    weighted_bipred_idc: int
    deblocking_filter_control_present: bool
    redundant_pic_cnt_present: bool


def _scaling_list(b: Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> tuple[int, Sps]:
    """(seq_parameter_set_id, fields) of an SPS NAL unit (header byte included)."""
    b = _bits(unescape(nal[1:])[0])
    profile = b.read(8)
    b.read(16)  # constraint flags, level_idc
    sps_id = b.ue()
    chroma_format, separate = 1, False
    if profile in _HIGH_PROFILES:
        chroma_format = b.ue()
        if chroma_format == 3:
            separate = b.flag()
        b.ue()  # bit_depth_luma_minus8
        b.ue()  # bit_depth_chroma_minus8
        b.read(1)  # qpprime_y_zero_transform_bypass_flag
        if b.flag():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format == 3 else 8):
                if b.flag():
                    _scaling_list(b, 16 if i < 6 else 64)
    log2_max_frame_num = b.ue() + 4
    poc_type = b.ue()
    log2_max_poc_lsb, always_zero = 0, False
    if poc_type == 0:
        log2_max_poc_lsb = b.ue() + 4
    elif poc_type == 1:
        always_zero = b.flag()
        b.se()  # offset_for_non_ref_pic
        b.se()  # offset_for_top_to_bottom_field
        for _ in range(b.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            b.se()
    b.ue()  # max_num_ref_frames
    b.read(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = b.ue() + 1
    height_map_units = b.ue() + 1
    frame_mbs_only = b.flag()
    return sps_id, Sps(
        separate_colour_plane=separate,
        chroma_array_type=0 if separate else chroma_format,
        log2_max_frame_num=log2_max_frame_num,
        poc_type=poc_type,
        log2_max_poc_lsb=log2_max_poc_lsb,
        delta_pic_order_always_zero=always_zero,
        frame_mbs_only=frame_mbs_only,
        pic_size_in_map_units=width_mbs * height_map_units,
    )


def parse_pps(nal: bytes) -> tuple[int, Pps]:
    """(pic_parameter_set_id, fields) of a PPS NAL unit (header byte included)."""
    b = _bits(unescape(nal[1:])[0])
    pps_id = b.ue()
    sps_id = b.ue()
    entropy = b.flag()
    bottom_field = b.flag()
    groups = b.ue() + 1
    map_type = change_rate = 0
    if groups > 1:
        map_type = b.ue()
        if map_type == 0:
            for _ in range(groups):
                b.ue()  # run_length_minus1
        elif map_type == 2:
            for _ in range(groups - 1):
                b.ue()  # top_left
                b.ue()  # bottom_right
        elif map_type in (3, 4, 5):
            b.read(1)  # slice_group_change_direction_flag
            change_rate = b.ue() + 1
        elif map_type == 6:
            units = b.ue() + 1
            bits = (groups - 1).bit_length()
            b.read(bits * units)
    l0 = b.ue() + 1
    l1 = b.ue() + 1
    weighted_pred = b.flag()
    weighted_bipred = b.read(2)
    b.se()  # pic_init_qp_minus26
    b.se()  # pic_init_qs_minus26
    b.se()  # chroma_qp_index_offset
    deblocking = b.flag()
    b.read(1)  # constrained_intra_pred_flag
    redundant = b.flag()
    return pps_id, Pps(
        sps_id=sps_id,
        entropy_coding_mode=entropy,
        bottom_field_pic_order_in_frame_present=bottom_field,
        num_slice_groups=groups,
        slice_group_map_type=map_type,
        slice_group_change_rate=change_rate,
        num_ref_idx_l0_default=l0,
        num_ref_idx_l1_default=l1,
        weighted_pred=weighted_pred,
        weighted_bipred_idc=weighted_bipred,
        deblocking_filter_control_present=deblocking,
        redundant_pic_cnt_present=redundant,
    )


@dataclass(frozen=True, slots=True)
class ParameterSets:
    """A track's SPSs and PPSs by id, from its ``avcC``."""

    sps: dict[int, Sps]
    pps: dict[int, Pps]


def parse_parameter_sets(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> ParameterSets:
    """Parse the avcC's parameter sets (once per track); a broken one is a MediaError."""
    return ParameterSets(dict(map(parse_sps, sps)), dict(map(parse_pps, pps)))


def _ref_pic_list_modification(b: Bits, slice_type: int) -> None:
    lists = 0 if slice_type in (SLICE_I, SLICE_SI) else 2 if slice_type == SLICE_B else 1
    for _ in range(lists):
        if b.flag():  # ref_pic_list_modification_flag_lX
            while (idc := b.ue()) != 3:
                if idc > 5:
                    raise MediaError(f"bad modification_of_pic_nums_idc {idc}")
                b.ue()  # abs_diff_pic_num_minus1 / long_term_pic_num / abs_diff_view_idx


def _pred_weight_table(b: Bits, sps: Sps, slice_type: int, l0: int, l1: int) -> None:
    b.ue()  # luma_log2_weight_denom
    chroma = sps.chroma_array_type != 0
    if chroma:
        b.ue()  # chroma_log2_weight_denom
    for count in (l0, l1) if slice_type == SLICE_B else (l0,):
        for _ in range(count):
            if b.flag():  # luma_weight_flag
                b.se()
                b.se()
            if chroma and b.flag():  # chroma_weight_flag
                for _ in range(4):
                    b.se()


def _dec_ref_pic_marking(b: Bits, idr: bool) -> None:
    if idr:
        b.read(2)  # no_output_of_prior_pics_flag, long_term_reference_flag
        return
    if b.flag():  # adaptive_ref_pic_marking_mode_flag
        while (op := b.ue()) != 0:
            if op > 6:
                raise MediaError(f"bad memory_management_control_operation {op}")
            if op in (1, 3):
                b.ue()  # difference_of_pic_nums_minus1
            if op == 2:
                b.ue()  # long_term_pic_num
            if op in (3, 6):
                b.ue()  # long_term_frame_idx
            if op == 4:
                b.ue()  # max_long_term_frame_idx_plus1


def _header_bits(b: Bits, nal_type: int, ref_idc: int, sets: ParameterSets) -> int:
    """Read a slice header (§7.3.3) and return its length in RBSP bits."""
    b.ue()  # first_mb_in_slice
    slice_type = b.ue() % 5
    pps = sets.pps.get(b.ue())
    if pps is None:
        raise MediaError("slice refers to an unknown PPS")
    sps = sets.sps.get(pps.sps_id)
    if sps is None:
        raise MediaError("PPS refers to an unknown SPS")
    if sps.separate_colour_plane:
        b.read(2)  # colour_plane_id
    b.read(sps.log2_max_frame_num)  # frame_num
    field_pic = False
    if not sps.frame_mbs_only:
        field_pic = b.flag()
        if field_pic:
            b.read(1)  # bottom_field_flag
    idr = nal_type == NAL_IDR
    if idr:
        b.ue()  # idr_pic_id
    if sps.poc_type == 0:
        b.read(sps.log2_max_poc_lsb)
        if pps.bottom_field_pic_order_in_frame_present and not field_pic:
            b.se()
    elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
        b.se()
        if pps.bottom_field_pic_order_in_frame_present and not field_pic:
            b.se()
    if pps.redundant_pic_cnt_present:
        b.ue()
    if slice_type == SLICE_B:
        b.read(1)  # direct_spatial_mv_pred_flag
    l0, l1 = pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default
    if slice_type in (SLICE_P, SLICE_SP, SLICE_B) and b.flag():  # num_ref_idx_active_override_flag
        l0 = b.ue() + 1
        if slice_type == SLICE_B:
            l1 = b.ue() + 1
    _ref_pic_list_modification(b, slice_type)
    if (pps.weighted_pred and slice_type in (SLICE_P, SLICE_SP)) or (
        pps.weighted_bipred_idc == 1 and slice_type == SLICE_B
    ):
        _pred_weight_table(b, sps, slice_type, l0, l1)
    if ref_idc:
        _dec_ref_pic_marking(b, idr)
    if pps.entropy_coding_mode and slice_type not in (SLICE_I, SLICE_SI):
        b.ue()  # cabac_init_idc
    b.se()  # slice_qp_delta
    if slice_type in (SLICE_SP, SLICE_SI):
        if slice_type == SLICE_SP:
            b.read(1)  # sp_for_switch_flag
        b.se()  # slice_qs_delta
    if pps.deblocking_filter_control_present and b.ue() != 1:
        b.se()  # slice_alpha_c0_offset_div2
        b.se()  # slice_beta_offset_div2
    if pps.num_slice_groups > 1 and 3 <= pps.slice_group_map_type <= 5:
        units = -(-sps.pic_size_in_map_units // pps.slice_group_change_rate)
        b.read(units.bit_length())  # Ceil(Log2(units + 1))
    return b.pos


# Slice headers are short: parse from this many NAL bytes first, the whole unit only if needed.
_FIRST_READ = 256


def slice_header_size(nal: bytes | memoryview, sets: ParameterSets) -> int:
    """Bytes of VCL NAL unit ``nal`` (its 1-byte header first) up to the end of the slice
    header's last byte: what Common Encryption leaves clear. Raises MediaError when the header
    cannot be read (unknown parameter set, truncated unit)."""
    if len(nal) < 2:
        raise MediaError("VCL NAL unit too short for a slice header")
    head = nal[0]
    nal_type, ref_idc = head & 0x1F, (head >> 5) & 3
    for limit in (_FIRST_READ, len(nal)):
        rbsp, removed = unescape(nal[1 : 1 + limit])
        try:
            bits = _header_bits(_bits(rbsp), nal_type, ref_idc, sets)
        except MediaError:
            if limit >= len(nal) - 1:
                raise
            continue
        size = (bits + 7) // 8  # RBSP bytes holding the header
        # Each emulation prevention byte before that point is one more NAL byte.
        epb = 0
        for pos in removed:
            if pos - epb >= size:
                break
            epb += 1
        return 1 + size + epb
    raise AssertionError("unreachable")  # pragma: no cover
