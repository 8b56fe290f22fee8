import os

# keep TensorFlow quiet and single-process friendly on the 2-core CI machine
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
