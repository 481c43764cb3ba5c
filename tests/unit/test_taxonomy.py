"""The taxonomy loader: the default file, the YAML format, and the refusal policy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from assets.tagging.taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy, refused_terms
from creatorlens.settings import REPO_ROOT

DEFAULT = REPO_ROOT / "taxonomy" / "default.yaml"

MINIMAL = {
    "name": "mini",
    "defaults": {"templates": ["a photo of {}."], "threshold": {"sigmoid": 0.1, "softmax": 0.5}},
    "categories": {
        "topic": {"tags": {"food": ["food", "a meal"], "travel": {"prompts": "travel", "threshold": 0.2}}},
        "shot_type": {"exclusive": True, "templates": ["a {}."], "tags": {"selfie": "selfie", "group_photo": "group"}},
    },
}


def with_tag(category: str, tag: str, spec: object) -> dict:
    data = copy.deepcopy(MINIMAL)
    data["categories"].setdefault(category, {"tags": {}})["tags"][tag] = spec
    return data


def test_default_taxonomy_loads_with_every_required_area() -> None:
    taxonomy = load_taxonomy(DEFAULT)
    names = {t.name for t in taxonomy.tags}
    assert {"fitness", "food", "travel", "fashion", "beauty", "gaming", "music", "art", "pets", "family", "tech",
            "finance", "sports", "outdoors", "home"} <= names
    assert {"tattooed", "pierced", "streetwear", "formal", "sporty", "vintage", "alt", "goth"} <= names
    assert {"alcohol", "tobacco", "weapons", "gambling", "explicit_content"} <= names
    categories = {c.name: c for c in taxonomy.categories}
    assert {"topic", "scene", "shot_type", "style", "hair_colour", "brand_safety"} <= set(categories)
    assert categories["scene"].exclusive and categories["hair_colour"].exclusive and not categories["topic"].exclusive
    assert all(len(t.prompts) >= 2 or len(t.phrases) == 1 for t in taxonomy.tags)
    assert len(taxonomy.version) == 16 and load_taxonomy(DEFAULT).version == taxonomy.version


def test_format_templates_thresholds_and_version_hash() -> None:
    taxonomy = parse_taxonomy(MINIMAL)
    food, travel, selfie, _ = taxonomy.tags
    assert food.prompts == ("a photo of food.", "a photo of a meal.")
    assert selfie.prompts == ("a selfie.",) and selfie.exclusive
    assert food.threshold("sigmoid") == 0.1 and food.threshold("softmax") == 0.5
    assert travel.threshold("sigmoid") == travel.threshold("softmax") == 0.2
    changed = copy.deepcopy(MINIMAL)
    changed["categories"]["topic"]["tags"]["food"] = ["food", "a dinner"]
    assert parse_taxonomy(changed).version != taxonomy.version  # a prompt change is a new taxonomy version
    reordered = copy.deepcopy(MINIMAL)
    reordered["defaults"]["threshold"] = {"softmax": 0.5, "sigmoid": 0.1}
    assert parse_taxonomy(reordered).version == taxonomy.version  # key order is not content
    swapped = copy.deepcopy(MINIMAL)
    swapped["categories"] = dict(reversed(list(swapped["categories"].items())))
    assert parse_taxonomy(swapped).version == taxonomy.version  # nor is file order


@pytest.mark.parametrize(
    ("category", "tag", "spec", "policy", "where"),
    [
        ("people", "asian", ["an asian person"], "ethnicity or race", "tag 'asian'"),
        ("topic", "faith", ["a muslim woman praying"], "religion", "prompt 'a muslim woman praying'"),
        ("topic", "wheelchair_user", ["a person in a wheelchair"], "health or disability", "tag 'wheelchair_user'"),
        ("topic", "mental", ["mental health"], "health or disability", "prompt 'mental health'"),
        ("people", "gay_couple", ["a couple"], "sexual orientation or gender identity", "tag 'gay_couple'"),
        ("body", "big_breasts", ["a woman"], "body-part size or body shape", "tag 'big_breasts'"),
        ("body", "curvy", ["a curvy woman"], "body-part size or body shape", "tag 'curvy'"),
        ("style", "schoolgirl_look", ["a schoolgirl outfit"], "sexualised age label", "tag 'schoolgirl_look'"),
        ("style", "young", ["a teen girl in a bikini"], "sexualised age label", "prompt 'a teen girl in a bikini'"),
    ],
)
def test_refused_entries_fail_with_an_error_naming_them(category, tag, spec, policy, where) -> None:
    with pytest.raises(TaxonomyError) as err:
        parse_taxonomy(with_tag(category, tag, spec))
    message = str(err.value)
    assert f"category {category!r}" in message and where in message and policy in message


def test_refusal_also_covers_category_names_and_templates() -> None:
    data = copy.deepcopy(MINIMAL)
    data["categories"]["ethnicity"] = {"tags": {"group_a": "people"}}
    with pytest.raises(TaxonomyError, match="category 'ethnicity': name 'ethnicity' would infer ethnicity or race"):
        parse_taxonomy(data)
    data = copy.deepcopy(MINIMAL)
    data["categories"]["topic"]["templates"] = ["a photo of an overweight person with {}."]
    with pytest.raises(TaxonomyError, match="template .* would infer body-part size or body shape"):
        parse_taxonomy(data)


def test_every_offending_entry_is_listed_at_once() -> None:
    data = with_tag("people", "latino", "a latino man")
    data["categories"]["people"]["tags"]["christian"] = "a christian"
    message = str(pytest.raises(TaxonomyError, parse_taxonomy, data).value)
    assert "tag 'latino'" in message and "tag 'christian'" in message


@pytest.mark.parametrize("text", ["short hair", "black hair", "motorsport racing", "healthy food", "weightlifting",
                                  "a portrait in landscape orientation", "a family with children", "flat lay"])
def test_near_misses_are_allowed(text: str) -> None:
    assert refused_terms(text) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["categories"]["topic"]["tags"].update(selfie="x"), "tag names are unique"),
        (lambda d: d["categories"]["topic"].update(templates=["no placeholder"]), "exactly one '{}'"),
        (lambda d: d["categories"]["topic"].update(threshold=1.5), r"must be in \(0, 1\]"),
        (lambda d: d["categories"]["topic"]["tags"].update(Food="x"), "lowercase snake_case"),
        (lambda d: d["categories"]["shot_type"]["tags"].pop("group_photo"), "at least two tags"),
        (lambda d: d["categories"]["topic"].update(colour="red"), "unknown key"),
    ],
)
def test_malformed_taxonomies_are_refused(mutate, message: str) -> None:
    data = copy.deepcopy(MINIMAL)
    mutate(data)
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy(data)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(with_tag("people", "hispanic", "a person")))
    with pytest.raises(TaxonomyError, match=str(path)):
        load_taxonomy(path)
    with pytest.raises(TaxonomyError, match="cannot read taxonomy"):
        load_taxonomy(tmp_path / "missing.yaml")
