"""Names of the records a ServerApp and a ClientApp exchange (one place, so the two halves agree).

Server -> client: ``global`` (ArrayRecord: the weights ``client_weights`` chose for this client),
``run`` (ConfigRecord: round, stage, the shared settings, the algorithm's class and hyper-parameters,
the label space) and ``payload.<group>`` / ``payload.config`` (the message ``configure_client``
returns, one ArrayRecord per named group, see :mod:`fl_core.flower.records`).
Client -> server: ``update`` (ArrayRecord: the shared weights after local training), ``train``
(MetricRecord: sample count, loss, images, steps, seconds, whether it keeps a personal model),
``upload.*`` (the message ``end_client`` returns), ``eval.*`` (metrics and pooled-metric counts)
and ``site`` (the answer to ``query``).
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
RUN_KEY = "run-key"
RESUME_ROUND = "resume-round"
STAGE = "stage"
ALGORITHM = "algorithm"
PERSONAL = "personal"
CALIBRATE = "calibrate"
VAL_FRACTION = "val-fraction"
TEST_FRACTION = "test-fraction"

# keys of the ``site`` ConfigRecord
SITE_INDEX = "index"
SITE_NAME = "name"
SITE_CLASSES = "classes"
SITE_TRAIN_SIZE = "train-size"
