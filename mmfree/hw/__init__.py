"""Integer-only inference of the MatMul-free LM, by simulation (the paper's FPGA claim, checked in software).

- `units`: scalar reference of each functional unit (plain Python ints: the spec), with op tallies;
- `engine`: the vectorized numpy engine, bit-exact with the references (`Engine.from_model`, `from_export`);
- `params`: float checkpoint -> fixed-point parameters (range-checked);
- `counts`: analytic op / byte counts per unit call and per token;
- `cost`: cost model (Horowitz 2014 energies) -> tokens/s and J/token; `report`: table and plot;
- `export`: memory images (2-bit packed weights, Q-format tables) plus a manifest;
- `cli`: `mmfree hw simulate` and `mmfree hw export`.
"""
