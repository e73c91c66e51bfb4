"""`mmfree pack` and `mmfree generate` end to end on CPU, with their error messages."""

from __future__ import annotations

import json

import torch

from mmfree.cli import main
from mmfree.infer.decode import Decoder
from mmfree.infer.packed import is_packed_checkpoint, load_packed
from mmfree.infer.sampling import SamplingParams


def test_pack_and_generate(checkpoint, tokenizer, tmp_path, capsys) -> None:
    dst = tmp_path / "p16"
    assert main(["pack", str(checkpoint), str(dst), "--format", "1.6bit"]) == 0
    assert is_packed_checkpoint(dst) and (dst / "tokenizer.json").is_file()
    capsys.readouterr()
    args = ["generate", str(dst), "--prompt", "the cat", "--temperature", "0", "--max-new-tokens", "7"]
    assert main([*args, "--no-stream", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    expected = Decoder(load_packed(dst, dtype=torch.float32), tokenizer).generate(
        ["the cat"], SamplingParams(max_new_tokens=7, temperature=0.0, eos_token_id=2)
    )[0]
    assert printed == expected + "\n"
    assert main([*args, "--stream"]) == 0
    assert capsys.readouterr().out == printed
    # the unpacked checkpoint generates too (same greedy text: the packed model is exact)
    assert main(["generate", str(checkpoint), *args[2:], "--no-stream"]) == 0
    assert capsys.readouterr().out == printed


def test_pack_embedding_dtype_and_generate(tmp_path, tokenizer, capsys) -> None:
    """`--embedding-dtype bfloat16` on an fp32 checkpoint: the report shows the smaller size, and
    `generate` runs the fp32 model with its bf16 embedding."""
    from mmfree.models import MMFreeForCausalLM
    from tests.infer.conftest import tiny_config

    src, dst = tmp_path / "src", tmp_path / "e16"
    MMFreeForCausalLM(tiny_config()).save_pretrained(src)
    tokenizer.save(str(src / "tokenizer.json"))
    assert main(["pack", str(src), str(dst), "--embedding-dtype", "bfloat16"]) == 0
    assert "MiB on disk" in capsys.readouterr().out
    model = load_packed(dst, dtype=torch.float32)
    assert model.model.embeddings.weight.dtype == torch.bfloat16
    args = ["generate", str(dst), "--prompt", "the cat", "--temperature", "0", "--max-new-tokens", "5"]
    assert main([*args, "--no-stream", "--device", "cpu", "--dtype", "float32"]) == 0
    expected = Decoder(model, tokenizer).generate(
        ["the cat"], SamplingParams(max_new_tokens=5, temperature=0.0, eos_token_id=2)
    )[0]
    assert capsys.readouterr().out == expected + "\n"


def test_generate_errors(checkpoint, packed_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    assert main(["generate", str(checkpoint), "--prompt-file", str(bad)]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err
    for flag, value in (
        ("--temperature", "-1"),
        ("--top-p", "0"),
        ("--top-k", "-3"),
        ("--repetition-penalty", "0"),
    ):
        assert main(["generate", str(checkpoint), "--prompt", "hi", flag, value]) == 1
        assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err
    assert main(["generate", str(checkpoint)]) == 1
    assert "exactly one of --prompt" in capsys.readouterr().err
    odd = tmp_path / "odd"
    odd.mkdir()
    for f in packed_dir.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((odd / "config.json").read_text())
    cfg["mmfree_quantization"]["version"] = 2
    (odd / "config.json").write_text(json.dumps(cfg))
    assert main(["generate", str(odd), "--prompt", "hi"]) == 1
    assert "format version '2'" in capsys.readouterr().err
