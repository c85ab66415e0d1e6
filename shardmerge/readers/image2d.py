"""Layout (b): a 2-D image with one spectrum per row sharing one linear or log-linear WCS along axis 1
(SDSS spPlate-like), with an IVAR, VAR or ERR image of the same shape."""

from __future__ import annotations

from .wcs_image import WcsImageReader


class Image2DReader(WcsImageReader):
    name = "image-2d"
    priority = 80
    description = "2-D image, one spectrum per row, shared linear/log-linear WCS (spPlate-like)"
    naxis = 2
