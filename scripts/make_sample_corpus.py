"""Write a small mixed corpus of synthetic FITS spectra (the demo's built-in sample data)."""

import argparse

from shardmerge.testing.spectra import make_mixed_corpus

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("folder")
parser.add_argument("--scale", type=int, default=1, help="multiply the number of files")
args = parser.parse_args()
files = make_mixed_corpus(args.folder, n_wcs1d=24 * args.scale, n_image2d=4 * args.scale, n_sdss=12 * args.scale)
print(f"wrote {len(files)} FITS files under {args.folder}")
