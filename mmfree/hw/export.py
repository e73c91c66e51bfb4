"""Memory images for an RTL core: one little-endian binary file per memory, and `manifest.json`.

Files (one per memory of the design; a tensor is a byte range in its memory):

- `embedding.bin`  int32 Q16 `[V, d]` (one row read per token);
- `ternary.bin`    every ternary matrix, 2-bit packed, row-major, 4 codes per byte, code j of a byte in bits
                   2j..2j+1 (00 = 0, 01 = +1, 10 = -1; 11 is invalid), each matrix padded to a whole byte;
- `scales.bin`     int32 Q24 per-tensor ternary scales;
- `norms.bin`      int32 Q16 RMSNorm weights (block norms, each BitLinear's input norm, g_norm, final norm);
- `lower_bounds.bin` uint16 Q15 per-layer forget-gate lower bounds (layers > 0);
- `sigmoid.bin`    uint16 Q15 sigmoid table, 513 points over [-16, 16] (SiLU reuses it).

`manifest.json` names, for each tensor, its file, byte offset, shape, element width, signedness and
Q-format, plus the model dimensions and the integer constants (epsilons in Q32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmfree.hw import units
from mmfree.hw.counts import ModelDims
from mmfree.hw.params import BitLinearParams, HwParams, LayerParams

FORMAT = "mmfree-hw-memimg"
VERSION = 1
_DTYPES = {(32, True): "<i4", (16, False): "<u2"}


def pack_ternary(codes: np.ndarray) -> bytes:
    """`[N, K]` codes in {-1, 0, 1} -> 2 bits each, 4 per byte (layout in the module docstring)."""
    flat = codes.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < -1 or flat.max() > 1):
        raise ValueError("ternary codes must be -1, 0 or 1")
    bits = np.where(flat == -1, 2, flat).astype(np.uint8)
    bits = np.concatenate([bits, np.zeros((-bits.size) % 4, dtype=np.uint8)]).reshape(-1, 4)
    return (bits[:, 0] | (bits[:, 1] << 2) | (bits[:, 2] << 4) | (bits[:, 3] << 6)).astype(np.uint8).tobytes()


def unpack_ternary(data: bytes, shape: tuple[int, ...], name: str = "tensor") -> np.ndarray:
    """Inverse of `pack_ternary`; refuses the invalid code 11."""
    n = int(np.prod(shape))
    raw = np.frombuffer(data, dtype=np.uint8)
    bits = np.stack([(raw >> (2 * j)) & 3 for j in range(4)], axis=1).reshape(-1)[:n]
    if np.any(bits == 3):
        raise ValueError(f"{name}: invalid 2-bit ternary code 11 in the memory image (corrupt file?)")
    return np.where(bits == 2, -1, bits).astype(np.int8).reshape(shape)


class _Memory:
    """One memory image being written: appends tensors, remembers their offsets."""

    def __init__(self, file: str) -> None:
        self.file, self.chunks, self.size = file, [], 0

    def add(self, data: bytes) -> int:
        offset = self.size
        self.chunks.append(data)
        self.size += len(data)
        return offset


def export_params(params: HwParams, out: str | Path, overwrite: bool = False) -> Path:
    """Write `params` as memory images plus `manifest.json` into directory `out`; returns its path."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pick a new directory or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    mems = {
        k: _Memory(f"{k}.bin") for k in ("embedding", "ternary", "scales", "norms", "lower_bounds", "sigmoid")
    }
    tensors: dict[str, dict[str, Any]] = {}

    def fixed(mem: str, name: str, arr: np.ndarray, bits: int, signed: bool, frac: int) -> None:
        data = np.asarray(arr).astype(_DTYPES[(bits, signed)]).tobytes()
        tensors[name] = {"file": mems[mem].file, "offset": mems[mem].add(data), "shape": list(arr.shape),
                         "bits": bits, "signed": signed, "qformat": f"Q{frac}", "encoding": "twos-complement-le"
                         if signed else "unsigned-le"}  # fmt: skip

    def ternary(name: str, bl: BitLinearParams) -> None:
        data = pack_ternary(bl.codes)
        tensors[f"{name}.weight"] = {"file": mems["ternary"].file, "offset": mems["ternary"].add(data),
                                     "shape": list(bl.codes.shape), "bits": 2, "signed": True,
                                     "qformat": "ternary", "encoding": "2bit-00=0,01=+1,10=-1"}  # fmt: skip
        fixed("scales", f"{name}.scale", np.array([bl.scale_q24]), 32, True, units.SCALE_FRAC)
        fixed("norms", f"{name}.norm", bl.norm_w, 32, True, units.NORM_W_FRAC)

    fixed("embedding", "embedding", params.embedding, 32, True, units.ACT_FRAC)
    for idx, lp in enumerate(params.layers):
        p = f"layers.{idx}"
        fixed("norms", f"{p}.attn_norm", lp.attn_norm, 32, True, units.NORM_W_FRAC)
        for proj in ("i_proj", "f_proj", "g_proj", "o_proj"):
            ternary(f"{p}.attn.{proj}", getattr(lp, proj))
        if lp.g_norm is not None:
            fixed("norms", f"{p}.attn.g_norm", lp.g_norm, 32, True, units.NORM_W_FRAC)
        if lp.lower_bound is not None:
            fixed("lower_bounds", f"{p}.lower_bound", lp.lower_bound, 16, False, units.GATE_FRAC)
        fixed("norms", f"{p}.mlp_norm", lp.mlp_norm, 32, True, units.NORM_W_FRAC)
        ternary(f"{p}.mlp.gate_proj", lp.gate_proj)
        ternary(f"{p}.mlp.down_proj", lp.down_proj)
    fixed("norms", "norm", params.norm, 32, True, units.NORM_W_FRAC)
    ternary("lm_head", params.lm_head)
    fixed("sigmoid", "sigmoid_table", params.sigmoid_table, 16, False, units.GATE_FRAC)
    for mem in mems.values():
        (out / mem.file).write_bytes(b"".join(mem.chunks))
    d = params.dims
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "dims": {
            "vocab": d.vocab,
            "hidden": d.hidden,
            "layers": d.layers,
            "inner": d.inner,
            "intermediate": d.intermediate,
            "gate_form": d.gate_form,
            "lower_bound": d.lower_bound,
        },
        "constants": {
            "eps_norm_q32": params.eps_norm_q32,
            "eps_bitlinear_q32": params.eps_bitlinear_q32,
            "activation_qformat": f"s32 Q{units.ACT_FRAC}",
            "gate_qformat": f"u16 Q{units.GATE_FRAC}",
            "sigmoid_range": [-(1 << units.SIG_RANGE_LOG2), 1 << units.SIG_RANGE_LOG2],
        },
        "memories": {m.file: m.size for m in mems.values()},
        "tensors": tensors,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def load_export(directory: str | Path) -> HwParams:
    """Read memory images written by `export_params` back into `HwParams` (validated)."""
    root = Path(directory)
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no manifest.json in {root}; write one with `mmfree hw export CHECKPOINT {root}`"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} v{VERSION} manifest (got {manifest.get('format')!r})")
    blobs: dict[str, bytes] = {}
    for file, size in manifest["memories"].items():
        if not (root / file).is_file():
            raise FileNotFoundError(f"memory image {root / file} named in the manifest is missing")
        blobs[file] = (root / file).read_bytes()
        if len(blobs[file]) != size:
            raise ValueError(f"{root / file} has {len(blobs[file])} bytes; the manifest says {size}")
    tensors = manifest["tensors"]

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"tensor {name!r} missing from {path}")
        t = tensors[name]
        shape, blob = tuple(t["shape"]), blobs[t["file"]]
        if t["bits"] == 2:
            return unpack_ternary(
                blob[t["offset"] : t["offset"] + (int(np.prod(shape)) + 3) // 4], shape, name
            )
        dt = np.dtype(_DTYPES[(t["bits"], t["signed"])])
        n = int(np.prod(shape))
        return np.frombuffer(blob, dtype=dt, count=n, offset=t["offset"]).astype(np.int64).reshape(shape)

    def bl(name: str) -> BitLinearParams:
        return BitLinearParams(get(f"{name}.weight"), int(get(f"{name}.scale")[0]), get(f"{name}.norm"))

    dims = ModelDims(**manifest["dims"])
    layers = []
    for idx in range(dims.layers):
        p = f"layers.{idx}"
        layers.append(
            LayerParams(
                attn_norm=get(f"{p}.attn_norm"),
                i_proj=bl(f"{p}.attn.i_proj"),
                f_proj=bl(f"{p}.attn.f_proj"),
                g_proj=bl(f"{p}.attn.g_proj"),
                o_proj=bl(f"{p}.attn.o_proj"),
                g_norm=get(f"{p}.attn.g_norm") if f"{p}.attn.g_norm" in tensors else None,
                lower_bound=get(f"{p}.lower_bound") if f"{p}.lower_bound" in tensors else None,
                mlp_norm=get(f"{p}.mlp_norm"),
                gate_proj=bl(f"{p}.mlp.gate_proj"),
                down_proj=bl(f"{p}.mlp.down_proj"),
            )
        )
    c = manifest["constants"]
    params = HwParams(dims, int(c["eps_norm_q32"]), int(c["eps_bitlinear_q32"]), get("embedding"), layers,
                      get("norm"), bl("lm_head"), get("sigmoid_table"))  # fmt: skip
    params.validate()
    return params
