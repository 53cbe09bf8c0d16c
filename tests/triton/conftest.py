"""Run Triton kernels on CPU tensors through Triton's interpreter.

The interpreter is chosen when a kernel is decorated, i.e. when its module is first
imported, so the variable must be set before any test module imports the kernel.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"
