"""The GPU check's parts, one module each; importing a module registers its part in
`gpucheck.harness.PARTS`, and the parts run in the order registered: the order of the imports below.
Environment comes first (the peak rate every MFU divides by), throughput and regularizers before the
projection that reads them, and compiled last, so the time the others leave unused goes to it.
"""

# isort: off
from gpucheck.parts import environment, throughput, regularizers, projection, data_loading  # noqa: F401
from gpucheck.parts import fashion_mnist, kill_resume, gpu_lock, pytest_cuda, compiled  # noqa: F401

# isort: on
