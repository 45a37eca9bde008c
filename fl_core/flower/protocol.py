"""Names of the records a ServerApp and a ClientApp exchange (one place, so the two halves agree).

Server -> client: ``global`` (ArrayRecord: the global weights), ``run`` (ConfigRecord: the round, the
shared settings, the label space, the sampling) and ``payload.arrays`` / ``payload.config`` (what the
algorithm's ``configure_client`` returns, see :mod:`fl_core.flower.records`).
Client -> server: ``update`` (ArrayRecord: the shared weights after local training), ``train``
(MetricRecord: sample count, loss, images, steps, seconds), ``upload.*`` (what ``end_client``
returns), ``eval.*`` (metrics and pooled-metric counts) and ``site`` (the answer to ``query``).
The client's own state is ``client.*`` in the ClientApp's context state, never in a message.
"""

GLOBAL = "global"
RUN = "run"
PAYLOAD = "payload"
UPDATE = "update"
TRAIN = "train"
UPLOAD = "upload"
EVAL = "eval"
SITE = "site"
CLIENT_STATE = "client"

# keys of the ``run`` ConfigRecord
ROUND = "round"
SHARED = "shared"
CLASSES = "classes"
NUM_CLIENTS = "num-clients"
SAMPLED = "sampled"
CLIENT_SIZES = "client-sizes"
RUN_KEY = "run-key"
RESUME_ROUND = "resume-round"
VAL_FRACTION = "val-fraction"
TEST_FRACTION = "test-fraction"

# keys of the ``site`` ConfigRecord
SITE_INDEX = "index"
SITE_NAME = "name"
SITE_CLASSES = "classes"
SITE_TRAIN_SIZE = "train-size"
