"""Encoding rendered images as the files hospitals store: PNG/JPEG, DICOM, NIfTI.

Bytes must be deterministic (same seed, same tree), so UIDs come from the caller's generator and
gzip is written with a zero timestamp.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
from PIL import Image, ImageFilter

from envs.messiness import encode

#: Root of the UIDs we mint (a documented example root, not a real organisation's).
UID_ROOT = "1.2.826.0.1.3680043.8.498."
#: The 2D slice of a NIfTI volume that holds the labelled image (documented for the organiser).
NIFTI_LABELLED_SLICE = "middle"


def _uid(rng: np.random.Generator) -> str:
    return UID_ROOT + ".".join(str(int(rng.integers(1, 10**9))) for _ in range(3))


def dicom_bytes(img: Image.Image, identity: dict[str, str], modality_code: str, rng: np.random.Generator) -> bytes:
    """A valid DICOM file holding ``img`` as 8-bit pixel data and the planted patient identity."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    gray = np.asarray(img.convert("L"), dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = _uid(rng)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + "1"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(rng)
    ds.SeriesInstanceUID = _uid(rng)
    ds.PatientName = identity["patient_name"]
    ds.PatientID = identity["mrn"]
    ds.PatientBirthDate = identity["birth_date"]
    ds.InstitutionName = "St. Example General Hospital"
    ds.Modality = modality_code
    ds.StudyDate = "20190302"
    ds.Rows, ds.Columns = gray.shape
    ds.PixelSpacing = [0.5, 0.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = gray.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def nifti_bytes(img: Image.Image, rng: np.random.Generator, depth: int = 5) -> bytes:
    """A gzipped NIfTI volume whose middle axial slice is ``img``; outer slices are blurrier neighbours."""
    import nibabel as nib

    gray = img.convert("L")
    mid = depth // 2
    slices = []
    for z in range(depth):
        radius = abs(z - mid) * 1.5
        sl = gray.filter(ImageFilter.GaussianBlur(radius)) if radius else gray
        slices.append(np.asarray(sl, dtype=np.uint8).T)  # NIfTI stores x first
    vol = np.stack(slices, axis=-1)
    image = nib.Nifti1Image(vol, affine=np.diag([0.9, 0.9, 5.0, 1.0]))
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), mtime=0)


def image_bytes(img: Image.Image, fmt: str, *, identity: dict[str, str] | None = None,
                modality_code: str = "OT", rng: np.random.Generator | None = None) -> bytes:
    """Encode ``img`` in one of png / jpg / dcm / nii.gz."""
    if fmt in ("png", "jpg"):
        return encode(img, fmt)
    if rng is None:
        raise ValueError("DICOM and NIfTI encoding need an rng for UIDs and slices")
    if fmt == "dcm":
        return dicom_bytes(img, identity or {"patient_name": "", "mrn": "", "birth_date": ""}, modality_code, rng)
    if fmt == "nii.gz":
        return nifti_bytes(img, rng)
    raise ValueError(f"unknown image format {fmt!r}; use png, jpg, dcm or nii.gz")
