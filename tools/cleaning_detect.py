"""The three cleaning detectors as pure functions over decoded images (no files, no tools).

They live in modules of their own; this one re-exports them for callers written against it:

* :mod:`tools.cleaning_duplicates`: near-duplicate groups and the copy to keep;
* :mod:`tools.cleaning_offtopic`: off-topic images by a robust outlier score;
* :mod:`tools.cleaning_labels`: likely label errors by confident learning.
"""

from __future__ import annotations

from tools.cleaning_duplicates import (  # noqa: F401
    DUPLICATE_SIMILARITY,
    JPEG_COPY_RATIO,
    DuplicateGroups,
    duplicate_groups,
    duplicate_groups_of,
    find_duplicate_groups,
    keep_first,
)
from tools.cleaning_labels import (  # noqa: F401
    LABEL_FIT_MAX,
    LABEL_MIN_MARGIN,
    LABEL_MIN_SKILL,
    LabelIssues,
    fit_predict_proba,
    label_issues,
    label_issues_of,
    out_of_fold_probs,
)
from tools.cleaning_offtopic import (  # noqa: F401
    OFFTOPIC_K,
    OFFTOPIC_Z,
    group_cut,
    offtopic_cut,
    offtopic_indices,
    offtopic_indices_of,
    outlier_scores,
    tail_stands_out,
)
