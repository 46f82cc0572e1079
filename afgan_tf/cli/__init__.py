"""Console scripts (absl flags); each module has a ``run()`` entry point.

TensorFlow's C++ side prints to stderr at start-up before its logging is configured (a CUDA driver search, a
failed ``cuInit`` on a CPU machine, CPU feature notes) and, at ERROR level, a few notes while it optimises
graphs: alarming and useless there. Unless the user set ``TF_CPP_MIN_LOG_LEVEL`` (then every line stays),
the scripts set it to 2 and run with those known lines filtered out of stderr (``common.start_tensorflow``,
``log_filter``); anything else is kept.
"""

import os

USER_LOG_LEVEL = os.environ.get('TF_CPP_MIN_LOG_LEVEL')       # None: the scripts quiet TensorFlow's start.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
