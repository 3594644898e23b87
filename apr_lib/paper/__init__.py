"""The paper layer: the paper's numbers (paper_results), one module per section of the paper named after its key
(fig2_amplitude_swap ... ablation_paper_vs_code, each with the interface of apr_lib.paper.report), the shared
report helpers, the claims merge and index page (index), the run's manifest, the explorer and the notebooks' outputs.
"""
