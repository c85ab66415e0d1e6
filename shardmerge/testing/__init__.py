"""Synthetic FITS files for the tests, the demo and the benchmarks: never used by the pipeline itself.

`spectra` writes the three built-in generic layouts (1-D WCS images, 2-D images, SDSS spec tables) and the
mixed demo corpus; `surveys` writes each survey layout to its published data model, with the truth a
correct reader must produce."""
