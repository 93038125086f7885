"""index.html and DATASET.md come from Jinja2 templates (package data): the page escapes every
value, the card's YAML front matter is written by huggingface_hub and parses back."""
from __future__ import annotations

import json

import yaml
from huggingface_hub import DatasetCard

from emoprep.manifests.cards import card_text
from emoprep.stages.report import card, page

SCRIPT = "<script>alert(1)</script>"


def test_the_page_escapes_values(built):
    *_, r = built
    r = json.loads(json.dumps(r))
    r["categories"]["by_category"][0]["category"] = SCRIPT
    r["deviations"] = ['a "quoted" <b>claim</b> & more']
    r["stages"][0]["params"]["x"] = SCRIPT
    r["rejects"]["by_reason"][0]["examples"][0]["message"] = SCRIPT
    html = page.render(r, {}, None)
    assert SCRIPT not in html and "<b>claim</b>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert "<li>a &#34;quoted&#34; &lt;b&gt;claim&lt;/b&gt; &amp; more</li>" in html
    assert html.count("<script>") == 1                      # the page's own image check
    # a title that closes the <title> element is text too
    r["title"] = "</title><h1>x"
    assert "<title>&lt;/title&gt;&lt;h1&gt;x</title>" in page.render(r, {}, None)


def test_the_card_front_matter_parses_and_holds_the_card_fields(built):
    *_, out_dir, r = built
    text = (out_dir / "DATASET.md").read_text()
    head, sep, body = text.removeprefix("---\n").partition("\n---\n")
    assert sep and body.startswith(f"\n# {r['title']}\n")
    meta = yaml.safe_load(head)
    assert meta == {
        "pretty_name": r["title"], "license": "other", "license_name": "mixed-source-licences",
        "license_details": ("Derived from datasets with their own terms; see Sources. Not for redistribution "
                            "unless every source allows it."),
        "tags": ["emotion-recognition", "valence-arousal", "emoprep", "music", "spectrogram", "food-images",
                 "vit-tokens"],
        "size_categories": ["n<1K"], "source_datasets": ["deam", "foodpics"]}
    assert DatasetCard(text).data.to_dict() == meta       # what the Hub reads
    # the body: a section per part of the report, sources with citations
    for heading in ("## Dataset summary", "## Sources, licences and citations", "## How it was made",
                    "## Filtering (rejects)", "## Splits", "## Labels", "## Known faults found in the sources",
                    "## Weights used", "## How to load", "## Citation"):
        assert f"\n{heading}\n" in body, heading
    assert "@article{aljanaki2017deam," in body and "| `deam` | raw data |" in body


def test_a_title_with_yaml_syntax_stays_a_string():
    title = 'a: "b" # c\n- d'
    meta = card.front_matter({"title": title, "labels": {"by_modality": {}}, "weights": [], "stages": []})
    text = card_text(meta, "\n# x\n")
    assert yaml.safe_load(text.split("---\n")[1])["pretty_name"] == title
