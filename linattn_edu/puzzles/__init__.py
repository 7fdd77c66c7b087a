"""Triton puzzles: the reader writes the kernels of chapters 2, 4 and 6 from skeletons.

One module per chapter (:mod:`~linattn_edu.puzzles.ch02`, :mod:`~linattn_edu.puzzles.ch04`,
:mod:`~linattn_edu.puzzles.ch06`). Each puzzle has a spec (NumPy), a launcher, a checker
``check_*`` that runs the reader's ``@triton.jit`` kernel under the Triton interpreter (or on a GPU)
at small float32 shapes and prints ✓/✗ with the first wrong index and a hint, and a drawing
``draw_*`` of the tiles each program instance loads and stores. The reference solutions live in a
private module and are proved by the tests.

Call :func:`linattn_edu.runtime.setup` before importing Triton so that kernels run in the
interpreter on a CPU.
"""

#: The puzzles in ladder order: (chapter, checker name, what the reader writes).
PUZZLES = [
    (2, "check_add", "vector add with a mask"),
    (2, "check_softmax", "row softmax"),
    (2, "check_matmul", "tiled matmul"),
    (2, "check_flash_forward", "FlashAttention forward: online softmax, causal tile skipping"),
    (2, "check_flash_ds", "FlashAttention backward: dS = P * (dP - delta)"),
    (4, "check_linear_attention_forward", "chunked linear attention forward: intra-chunk plus carried state"),
    (4, "check_linear_attention_backward", "chunked linear attention backward: dK, dV walking chunks backwards"),
    (6, "check_scan_tile", "a linear recurrence scanned within one tile"),
    (6, "check_chunked_scan", "a chunked scan with carries between tiles"),
    (6, "check_causal_conv", "causal depthwise convolution"),
]

__all__ = ["PUZZLES"]
