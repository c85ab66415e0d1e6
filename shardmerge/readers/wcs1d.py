"""Layout (a): one spectrum per file in a 1-D image with a linear or log-linear WCS; the uncertainty,
if any, in an image extension named ERR/SIGMA/STD (1-sigma), IVAR or VAR."""

from __future__ import annotations

from .wcs_image import WcsImageReader


class WcsImage1DReader(WcsImageReader):
    name = "wcs-1d"
    priority = 90
    description = "1-D image spectrum with a linear or log-linear (DC-FLAG=1) WCS"
    naxis = 1
