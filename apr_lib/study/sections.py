"""The paper's tables and figures as sections of this project, in the paper's order: pure data.

The one list the Snakefile (what `all` builds, apr_lib.study.targets), the index page and the tests read. A
section's key names its notebook (notebooks/<NN>_<key>.ipynb), its module in the paper layer
(apr_lib.paper.<key>) and its claims file; its notebook writes, under outputs/<profile>/:
    tables/<table>.{csv,md,tex}   figures/<figure>.{png,pdf,md} (md: its caption)   claims/<key>.csv
    notebooks/<notebook>.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str                      # also the name of its claims file and of its module apr_lib.paper.<key>
    notebook: str                 # notebooks/<notebook>.ipynb: <NN>_<key>, NN its place in the paper's order
    paper: str                    # where it stands in the paper
    title: str
    summary: str                  # one line for the index: what it shows
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    runs_table: str | None = None  # profile key under `tables:` listing the runs it reads
    suites: tuple[str, ...] = ()   # metrics suites it reads for each of those runs
    weights_of: tuple[str, ...] = ()  # methods among those runs whose trained weights it loads (load_run)


SECTIONS: tuple[Section, ...] = (
    Section("fig2_amplitude_swap", "01_fig2_amplitude_swap", "Figures 2 and 3 (section 1)",
            "Predictions after swapping amplitude spectra",
            "Test-image pairs and test images with OOD images, each given the other's amplitude, with Standard's and "
            "APR-SP's predictions; over many pairs, how often a prediction follows the amplitude or the phase image.",
            tables=("fig2_swap_stats",), figures=("fig2_amplitude_swap",), runs_table="table1_corruption",
            suites=("clean",), weights_of=("standard", "apr_sp")),
    Section("fig4_amp_phase_grid", "02_fig4_amp_phase_grid", "Figure 4 (section 3.1)",
            "Amplitude and phase bands",
            "Test accuracy of one model per (amplitude band, phase band), trained and tested on images rebuilt "
            "from those bands, beside the paper's grid.",
            tables=("fig4_amp_phase_grid",), figures=("fig4_amp_phase_grid",), runs_table="fig4_amp_phase_grid",
            suites=("clean",)),
    Section("fig5_tsne", "03_fig5_tsne", "Figure 5 (section 3.1)",
            "t-SNE of high-frequency amplitude spectra",
            "t-SNE of the high-frequency amplitude spectra of test images beside their Gaussian-noise versions and "
            "beside OOD images, with a linear probe's accuracy at telling each pair of sets apart.",
            tables=("fig5_separability",), figures=("fig5_tsne",)),
    Section("fig6_templates", "04_fig6_templates", "Figure 6 (section 3.2)",
            "The Fourier transform as four template-based contrasts",
            "The four templates of Eq. (3) weighting a test image at a few frequencies, and Eq. (4)'s phase from "
            "them checked against the FFT's at every frequency.",
            figures=("fig6_templates",)),
    Section("fig7_apr_examples", "05_fig7_apr_examples", "Figure 7 (section 4)",
            "The two ways of Amplitude-Phase Recombination",
            "APR-P and APR-S applied to test images, and how far each moves an image from the original.",
            figures=("fig7_apr_examples",)),
    Section("table1_corruption", "06_table1_corruption", "Table 1 (section 5.1)",
            "Common corruptions",
            "Clean and mean corruption error of each training method on the profile's -C test set; test error "
            "and RMS calibration error on clean and corrupted data in an appendix table.",
            tables=("table1_corruption", "table1_calibration"), runs_table="table1_corruption",
            suites=("clean", "corruption")),
    Section("table2_ood", "07_table2_ood", "Table 2 (section 5.1)",
            "Out-of-distribution detection",
            "Test accuracy and AUROC of separating test images from each OOD set by the model's confidence, "
            "per training method; every metric under both positive-class conventions in a second table.",
            tables=("table2_ood", "table2_ood_metrics"), runs_table="table2_ood", suites=("clean", "ood")),
    Section("table3_adversarial", "08_table3_adversarial", "Table 3 (section 5.1)",
            "Adversarial attack",
            "Clean accuracy and accuracy under AutoAttack of FGSM adversarial training alone and with Cutout, APR-P, "
            "APR-S and APR-SP.",
            tables=("table3_adversarial",), runs_table="table3_adversarial", suites=("clean", "autoattack")),
    Section("fig8_gradcam", "09_fig8_gradcam", "Figure 8 (section 5.2)",
            "Grad-CAM under fog",
            "Grad-CAM of Standard and APR-SP on fogged test images, and how much of each map stays on the object "
            "and like the clean image's map.",
            figures=("fig8_gradcam",), runs_table="table1_corruption", suites=("clean",),
            weights_of=("standard", "apr_sp")),
    Section("table4_imagenet_c", "10_table4_imagenet_c", "Table 4 (section 5.2)",
            "ImageNet-C",
            "Test error, CE per corruption and mCE of each training method beside the paper's ImageNet-C numbers; "
            "without ImageNet, a relative CE normalised by our Standard model on the profile's -C set.",
            tables=("table4_imagenet_c",), runs_table="table1_corruption", suites=("clean", "corruption")),
    Section("fig9_amp_phase_labels", "11_fig9_amp_phase_labels", "Figure 9 (section 5.3)",
            "Labelled by amplitude or phase?",
            "Clean accuracy, corruption accuracy and OOD AUROC of a model with a phase-label and an amplitude-label "
            "head (Eq. 7) against the weight lambda of its phase head.",
            tables=("fig9_amp_phase_labels",), figures=("fig9_amp_phase_labels",),
            runs_table="fig9_amp_phase_labels", suites=("clean", "corruption", "ood")),
    Section("fourier_heatmap", "12_fourier_heatmap", "Beyond the paper (Fourier heat map, Yin et al. 2019)",
            "Sensitivity to single Fourier-basis perturbations",
            "Test error of Standard and APR-SP under an additive Fourier basis image at each frequency, and "
            "their difference.",
            figures=("fourier_heatmap",), runs_table="table1_corruption", suites=("clean",),
            weights_of=("standard", "apr_sp")),
    Section("ablation_paper_vs_code", "13_ablation_paper_vs_code", "Beyond the paper (the paper vs its released code)",
            "The paper's text vs its released code",
            "APR-SP's clean error, mean corruption error and OOD AUROC with each option where the paper's text and "
            "its released code differ, as released and as the paper says.",
            tables=("ablation_paper_vs_code",), runs_table="ablation_paper_vs_code",
            suites=("clean", "corruption", "ood")),
)


def section(key: str) -> Section:
    for s in SECTIONS:
        if s.key == key:
            return s
    raise KeyError(f"no section {key!r}; sections: {', '.join(s.key for s in SECTIONS)}")
