"""`data.image_corruption`: the CIFAR-10-C corruptions that need no external assets.

gaussian_noise, shot_noise, impulse_noise, defocus_blur, motion_blur, brightness,
contrast, pixelate and jpeg, each at severity 1..5 with the constants Hendrycks &
Dietterich (ICLR 2019) give for 32×32 images (fog, frost, snow, spatter, glass and
zoom blur are left out: they need texture files or ImageMagick). Images are numpy
arrays [rows, H, W, C], [rows, C, H, W] or [rows, H, W]; uint8 (0..255) or float
(0..1, or 0..255 when the reference holds values above 1). Each image is corrupted
on its own, with the fault's seeded generator.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from pydantic import Field, model_validator

from faults.drift import pick
from harness.core.extras import MissingExtra, import_extra
from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    DataFaultParams,
    PayloadTransform,
    Reference,
)

# severity 1..5 -> parameter, for 32x32 images (CIFAR-10-C)
SEVERITY = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)],
    "motion_blur": [(10, 1.0), (10, 1.5), (10, 2.0), (10, 2.5), (12, 3.0)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg": [80, 65, 58, 50, 40],
}
CorruptionName = Literal[
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur",
    "brightness", "contrast", "pixelate", "jpeg",
]  # fmt: skip


# Each takes one HWC float image in [0, 1] and returns one in [0, 1].


def gaussian_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, c, x.shape)


def shot_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(x * c) / c


def impulse_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    hit = rng.random(x.shape) < c
    out[hit] = (rng.random(int(hit.sum())) < 0.5).astype(float)  # salt or pepper
    return out


def _ndimage() -> Any:
    """scipy.ndimage, from the `ml` extra (a core install validates scenarios without it)."""
    return import_extra("scipy.ndimage", "ml", "data.image_corruption")


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    ndimage = _ndimage()
    return np.stack([ndimage.convolve(x[..., ch], kernel, mode="reflect") for ch in range(x.shape[-1])], axis=-1)


def defocus_blur(x: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    radius, alias_sigma = c
    size = max(3, 2 * int(np.ceil(radius)) + 1)
    grid = np.arange(size) - size // 2
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(float)
    disk = _ndimage().gaussian_filter(disk / disk.sum(), alias_sigma)
    return _convolve(x, disk / disk.sum())


def motion_blur(x: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    radius, sigma = c
    angle = rng.uniform(-45.0, 45.0) * np.pi / 180
    size = 2 * int(radius) + 1
    kernel = np.zeros((size, size))
    for d in range(int(radius) + 1):  # one-sided streak, gaussian-weighted along its length
        i = size // 2 + int(round(d * np.sin(angle)))
        j = size // 2 + int(round(d * np.cos(angle)))
        kernel[i, j] += np.exp(-(d**2) / (2 * sigma**2))
    return _convolve(x, kernel / kernel.sum())


def brightness(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    if x.shape[-1] != 3:
        return x + c
    hsv = rgb_to_hsv(np.clip(x, 0, 1))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return hsv_to_rgb(hsv)


def contrast(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (x - mean) * c + mean


def _pil(x: np.ndarray) -> Image.Image:
    u8 = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)


def _from_pil(img: Image.Image, channels: int) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64) / 255
    return a[..., None] if channels == 1 else a


def pixelate(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    small = _pil(x).resize((max(1, int(w * c)), max(1, int(h * c))), Image.Resampling.BOX)
    return _from_pil(small.resize((w, h), Image.Resampling.BOX), x.shape[-1])


def jpeg(x: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=int(c))
    return _from_pil(Image.open(io.BytesIO(buf.getvalue())), x.shape[-1])


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    f.__name__: f
    for f in (gaussian_noise, shot_noise, impulse_noise, defocus_blur, motion_blur,
              brightness, contrast, pixelate, jpeg)
}  # fmt: skip


def corrupt_image(x: np.ndarray, corruption: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One HWC image in [0, 1] -> the corrupted image in [0, 1]."""
    return np.clip(CORRUPTIONS[corruption](x, SEVERITY[corruption][severity - 1], rng), 0.0, 1.0)


class ImageCorruptionParams(DataFaultParams):
    corruption: CorruptionName
    severity: int = Field(3, ge=1, le=5)
    column: str | None = None  # the image input; default: the first input with 3+ dimensions
    layout: Literal["auto", "HWC", "CHW"] = "auto"

    @model_validator(mode="after")
    def _scipy_installed(self) -> ImageCorruptionParams:
        try:  # said at validation, not by the load's child process mid-run
            _ndimage()
        except MissingExtra as exc:
            raise ValueError(str(exc)) from None
        return self


class ImageCorruptionTransform(PayloadTransform):
    def __init__(self, params: ImageCorruptionParams, reference: Reference) -> None:
        self.p = params
        self.ref = reference
        self.column = params.column
        self.scale = 1.0
        self.images = 0
        self.change_sum = 0.0

    def prepare(self, batch: Batch) -> None:
        if self.column is None:
            self.column = next((n for n, a in batch.features.items() if a.ndim >= 3), None)
            if self.column is None:
                raise ValueError("data.image_corruption: no image input (3+ dimensions) in the payload")
        array = batch.features.get(self.column)
        if array is None or array.ndim not in (3, 4):
            raise ValueError(f"data.image_corruption: input {self.column!r} is not a batch of images")
        ref = self.ref.features[self.column]
        self.scale = 255.0 if (ref.dtype == np.uint8 or float(np.nanmax(ref)) > 1.0) else 1.0

    def _chw(self, array: np.ndarray) -> bool:
        if self.p.layout != "auto":
            return self.p.layout == "CHW"
        return array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3)

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        assert self.column is not None
        array = batch.features[self.column]
        chw = self._chw(array)
        out = array.astype(np.float64) / self.scale
        severity = max(1, round(self.p.severity * magnitude)) if magnitude < 1 else self.p.severity
        for i in np.flatnonzero(pick(rows, self.p.fraction, rng)):
            img = out[i]
            hwc = np.moveaxis(img, 0, -1) if chw else (img[..., None] if img.ndim == 2 else img)
            done = corrupt_image(hwc, self.p.corruption, severity, rng)
            self.images += 1
            self.change_sum += float(np.abs(done - hwc).mean())
            out[i] = np.moveaxis(done, -1, 0) if chw else (done[..., 0] if img.ndim == 2 else done)
        out *= self.scale
        batch.features[self.column] = (np.rint(out).clip(0, 255) if array.dtype == np.uint8 else out).astype(array.dtype)

    def measured(self, batch: Batch) -> list[str]:
        return [self.column] if self.column else []

    def requested(self) -> dict[str, Any]:
        return {"corruption": self.p.corruption, "severity": self.p.severity, "fraction": self.p.fraction}

    def delivered(self) -> dict[str, Any]:
        mean = self.change_sum / self.images if self.images else None
        return {"images": self.images, "mean_abs_pixel_change": mean}


class ImageCorruption(DataFault):
    type = "data.image_corruption"
    Params = ImageCorruptionParams

    @classmethod
    def transform(cls, params: ImageCorruptionParams, reference: Reference) -> PayloadTransform:
        return ImageCorruptionTransform(params, reference)
