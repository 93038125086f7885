"""The figures (plots.py on canvas.py): a hexbin at DEAM scale, the same bytes every time."""
from __future__ import annotations

import numpy as np
import pandas as pd

from emoprep.stages.report import plots as rp
from emoprep.stages.report.canvas import style, to_png


def test_hexbin_replaces_points_at_deam_scale():
    rng = np.random.default_rng(0)
    n_audio, n_image = 6000, 400
    df = pd.DataFrame({"modality": [1] * n_audio + [0] * n_image,
                       "valence": rng.uniform(-1, 1, n_audio + n_image),
                       "arousal": rng.uniform(-1, 1, n_audio + n_image),
                       "dataset": ["deam"] * n_audio + ["foodpics"] * n_image})
    with style():
        fig = rp.va_scatter(df, hexbin_above=2000)
        assert fig is not None
        png1 = to_png(fig)
        again = rp.va_scatter(df, hexbin_above=2000)
        assert again is not None
        png2 = to_png(again)
    assert len(fig.axes) == 3                     # two panels + the audio panel's count colour bar
    assert "log" in fig.axes[2].get_ylabel()
    assert png1 == png2
