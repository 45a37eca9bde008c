"""The patient identifiers one site holds, so the output filter can remove them by value.

Shapes (:data:`tools.privacy.IDENTIFIER_SHAPES`) catch a record number or a date wherever it appears;
they cannot catch an identifier of no particular shape (a name written 'Jane Doe', a hospital's own
patient code). The site itself says which values those are: the cells of its label files' identifier
columns and its DICOM files' patient tags. They are read once per bound tool set, from ``raw/`` only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tools.layout_readers import TABLE_SUFFIXES, read_rows
from tools.privacy import Redactor, is_identifier_column
from tools.sandbox import Workspace

log = logging.getLogger(__name__)
#: DICOM attributes that identify a patient, a study or the people and place around it.
DICOM_IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber",
                     "ReferringPhysicianName", "PatientAddress", "PatientTelephoneNumbers", "InstitutionName",
                     "StudyID", "IssuerOfPatientID")
MAX_DICOM_FILES = 5000  # headers read per site (a site holding more is covered by the shapes beyond this)


def _table_values(path: Path) -> set[str]:
    columns, rows = read_rows(path)
    ident = [c for c in columns if is_identifier_column(c)]
    return {row.get(c, "") for row in rows for c in ident}


def _dicom_values(path: Path) -> set[str]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(DICOM_IDENTIFYING))
    except Exception:  # noqa: BLE001 - pydicom raises many types; an unreadable header has no values
        return set()
    out: set[str] = set()
    for tag in DICOM_IDENTIFYING:
        value = getattr(ds, tag, None)
        if value:
            text = str(value)
            out |= {text, text.replace("^", " ").strip()}
    return out


def site_identifier_values(ws: Workspace) -> set[str]:
    """Every identifier-column cell and DICOM patient tag value under the site's ``raw/``."""
    values: set[str] = set()
    dicoms = 0
    for path in ws.walk_files(ws.raw):
        name = path.name.lower()
        try:
            if name.endswith(TABLE_SUFFIXES):
                values |= _table_values(path)
            elif name.endswith(".dcm") and dicoms < MAX_DICOM_FILES:
                dicoms += 1
                values |= _dicom_values(path)
        except OSError:
            log.warning("could not read %s for identifiers", path.name)
    return {v for v in values if v.strip()}


class SiteRedactor:
    """A :class:`~tools.privacy.Redactor` for one site, built on first use (reading raw/ costs time)."""

    def __init__(self, ws: Workspace):
        self._ws = ws
        self._redactor: Redactor | None = None

    def __call__(self, obj: object) -> object:
        if self._redactor is None:
            self._redactor = Redactor(sorted(site_identifier_values(self._ws)))
        return self._redactor(obj)
