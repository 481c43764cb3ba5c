"""The tag taxonomy: categories, tags and prompt templates from a YAML file, validated before use.

Format (see ``taxonomy/default.yaml``)::

    name: creatorlens-default
    defaults:
      templates: ["a photo of {}.", "an instagram post showing {}."]
      threshold: {sigmoid: 0.1, softmax: 0.5}   # per scoring rule of the embedding model
      negative: "a photo."                      # contrast prompt for multi-label tags under softmax
    categories:
      topic:
        exclusive: false                        # multi-label: any number of tags per image
        tags:
          fitness: ["fitness", "a workout at the gym"]       # phrases put into every template
          food: {prompts: ["food", "a plate of food"], threshold: 0.08}
      shot_type:
        exclusive: true                         # at most one tag per image: the highest wins
        templates: ["a {} photo."]              # overrides the defaults for this category
        tags: {selfie: ["selfie"], group_photo: ["group of people"]}

Refusal policy: a category or tag that would infer ethnicity or race, religion, health or
disability, sexual orientation or gender identity, body-part sizes or body shape, or a sexualised
age label is refused at load time with a :class:`TaxonomyError` that names every offending entry
(category, tag, and the field and text that matched). Names, descriptions, prompts and templates
are all checked. The check is a word list, deliberately strict: a refused tag is rephrased (e.g.
``racing`` instead of ``race``), never silently dropped.

The taxonomy's ``version`` is a hash of its canonical content; every tag row records it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCORING_RULES = ("sigmoid", "softmax")
DEFAULT_TEMPLATES = ("a photo of {}.",)
DEFAULT_THRESHOLDS = {"sigmoid": 0.1, "softmax": 0.5}
DEFAULT_NEGATIVE = "a photo."
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TOKEN_RE = re.compile(r"[a-z0-9]+")


class TaxonomyError(ValueError):
    """The taxonomy file is malformed or lists something the refusal policy forbids."""


# --------------------------------------------------------------------------------------------
# Refusal policy: what a tag may never infer about a person.
# Single words match whole tokens (``health`` does not match ``healthy``); phrases match
# consecutive tokens (``short person`` refuses, ``short hair`` does not).
# --------------------------------------------------------------------------------------------
_SIZES = ("big", "bigger", "large", "huge", "small", "tiny", "flat", "thick", "wide", "narrow", "long", "short")
_BODY_PARTS = ("breast", "breasts", "boobs", "butt", "ass", "chest", "hips", "thighs", "legs", "lips", "nose",
               "feet", "penis", "bulge", "waist", "belly", "stomach", "arms")

REFUSED: dict[str, tuple[str, ...]] = {
    "ethnicity or race": (
        "ethnicity", "ethnic", "race", "races", "racial", "nationality", "skin color", "skin colour", "skin tone",
        "complexion", "asian", "african", "caucasian", "hispanic", "latino", "latina", "latinx", "arab",
        "indigenous", "aboriginal", "native american", "mixed race", "biracial", "black person", "black people",
        "black man", "black woman", "white person", "white people", "white man", "white woman", "brown skin",
        "dark skin", "light skin", "pale skin",
    ),
    "religion": (
        "religion", "religious", "christian", "christianity", "muslim", "muslims", "islam", "islamic", "jewish",
        "judaism", "jew", "hindu", "hinduism", "buddhist", "buddhism", "sikh", "catholic", "protestant", "atheist",
        "mormon", "hijab", "niqab", "burqa", "yarmulke", "kippah", "turban", "praying", "prayer",
    ),
    "health or disability": (
        "health", "disease", "illness", "ill", "sick", "disability", "disabled", "handicapped", "wheelchair",
        "crutches", "amputee", "prosthetic", "blind", "deaf", "autism", "autistic", "adhd", "depression",
        "depressed", "anxiety", "mental illness", "eating disorder", "anorexia", "anorexic", "bulimia", "bulimic",
        "diabetes", "diabetic", "cancer", "chemotherapy", "hiv", "pregnant", "pregnancy", "medication",
        "down syndrome", "chronic pain",
    ),
    "sexual orientation or gender identity": (
        "sexual orientation", "gay", "lesbian", "bisexual", "homosexual", "heterosexual", "queer",
        "lgbt", "lgbtq", "lgbtqia", "transgender", "asexual", "pansexual", "straight person", "straight man",
        "straight woman", "gender identity", "nonbinary", "non binary",
    ),
    "body-part size or body shape": (
        "body shape", "body type", "body size", "body weight", "weight loss", "bmi", "curvy", "chubby",
        "fat", "obese", "obesity", "overweight", "underweight", "skinny", "thin person", "thin body", "slim body",
        "slim figure", "plus size", "plus sized", "petite", "busty", "breast", "breasts", "boobs", "bust",
        "cleavage", "booty", "buttocks", "thigh gap", "six pack", "muscular", "tall person", "short person",
        "hourglass figure", "voluptuous", "height",
        *(f"{size} {part}" for size in _SIZES for part in _BODY_PARTS),
    ),
    "sexualised age label": (
        "teen", "teens", "teenage", "teenager", "teenagers", "teenie", "schoolgirl", "schoolboy", "school girl",
        "school boy", "barely legal", "jailbait", "underage", "lolita", "loli", "shota", "young girl", "young boy",
        "little girl", "little boy", "milf", "gilf", "dilf", "cougar", "barely 18", "just 18", "childlike",
    ),
}


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower().replace("_", " "))


def _compile_policy(policy: Mapping[str, Iterable[str]]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(label, tuple(_tokens(term)), term) for label, terms in policy.items() for term in terms]


_POLICY = _compile_policy(REFUSED)


def refused_terms(text: str) -> list[tuple[str, str]]:
    """``(policy label, matched term)`` for every refused term in ``text`` (empty: allowed)."""
    toks = _tokens(text)
    found: list[tuple[str, str]] = []
    for label, term_toks, term in _POLICY:
        n = len(term_toks)
        if any(tuple(toks[i:i + n]) == term_toks for i in range(len(toks) - n + 1)):
            found.append((label, term))
    return found


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tag:
    name: str
    category: str
    exclusive: bool
    phrases: tuple[str, ...]
    templates: tuple[str, ...]
    thresholds: Mapping[str, float]  # scoring rule → default threshold
    description: str = ""

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every template filled with every phrase: the prompts whose embeddings are averaged."""
        return tuple(t.format(p) for p in self.phrases for t in self.templates)

    def threshold(self, scoring: str) -> float:
        return float(self.thresholds[scoring])


@dataclass(frozen=True)
class Category:
    name: str
    exclusive: bool
    tags: tuple[Tag, ...]
    negative: str
    description: str = ""


@dataclass(frozen=True)
class Taxonomy:
    name: str
    categories: tuple[Category, ...]
    source: str = ""
    content: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tags(self) -> list[Tag]:
        return [t for c in self.categories for t in c.tags]

    @property
    def version(self) -> str:
        """Content hash: changes when any name, prompt, template, threshold or flag changes."""
        canonical = json.dumps(self.content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def category(self, name: str) -> Category:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(name)

    def negatives(self) -> dict[str, str]:
        return {c.name: c.negative for c in self.categories}

    def records(self) -> list[dict[str, Any]]:
        """One plain row per tag (for a DataFrame, the ``tags`` table and the asset preview)."""
        return [
            {
                "tag": t.name, "category": t.category, "exclusive": t.exclusive, "description": t.description,
                "prompts": list(t.prompts), "threshold_sigmoid": t.threshold("sigmoid"),
                "threshold_softmax": t.threshold("softmax"), "taxonomy_version": self.version,
            }
            for t in self.tags
        ]


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise TaxonomyError(f"{where}: expected a non-empty string or list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _templates(value: Any, where: str) -> tuple[str, ...]:
    templates = _str_list(value, where)
    for t in templates:
        if t.count("{}") != 1:
            raise TaxonomyError(f"{where}: template {t!r} must contain exactly one '{{}}'")
    return templates


def _thresholds(value: Any, base: Mapping[str, float], where: str) -> dict[str, float]:
    if value is None:
        out = dict(base)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = {rule: float(value) for rule in SCORING_RULES}
    elif isinstance(value, Mapping):
        unknown = set(value) - set(SCORING_RULES)
        if unknown:
            raise TaxonomyError(f"{where}: unknown scoring rule(s) {sorted(unknown)}; use {SCORING_RULES}")
        out = {**base, **{k: float(v) for k, v in value.items()}}
    else:
        raise TaxonomyError(f"{where}: threshold must be a number or a mapping of {SCORING_RULES}, got {value!r}")
    for rule, thr in out.items():
        if not 0.0 < thr <= 1.0:
            raise TaxonomyError(f"{where}: threshold for {rule} must be in (0, 1], got {thr}")
    return out


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise TaxonomyError(f"{where}: names are lowercase snake_case (letters, digits, _), got {value!r}")
    return value


def _check_refusals(source: str, taxonomy_entries: list[tuple[str, str, str]]) -> None:
    """Raise one error listing every entry (where, field, text) the refusal policy forbids."""
    problems: list[str] = []
    for where, what, text in taxonomy_entries:
        for label, term in refused_terms(text):
            problems.append(f"{where}: {what} {text!r} would infer {label} (matched {term!r})")
    if problems:
        raise TaxonomyError(
            f"taxonomy {source} refused: tags may not infer ethnicity or race, religion, health or disability, sexual "
            "orientation or gender identity, body-part size or body shape, or sexualised age labels.\n  "
            + "\n  ".join(problems)
        )


def parse_taxonomy(data: Any, source: str = "<memory>") -> Taxonomy:
    """Validate a parsed YAML document and build a :class:`Taxonomy` (or raise :class:`TaxonomyError`)."""
    if not isinstance(data, Mapping):
        raise TaxonomyError(f"{source}: the taxonomy must be a mapping with 'categories'")
    unknown = set(data) - {"name", "defaults", "categories", "version"}
    if unknown:
        raise TaxonomyError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise TaxonomyError(f"{source}: 'defaults' must be a mapping")
    base_templates = _templates(defaults.get("templates", list(DEFAULT_TEMPLATES)), f"{source}: defaults.templates")
    base_thresholds = _thresholds(defaults.get("threshold"), DEFAULT_THRESHOLDS, f"{source}: defaults.threshold")
    base_negative = _str_list(defaults.get("negative", DEFAULT_NEGATIVE), f"{source}: defaults.negative")[0]
    raw_categories = data.get("categories")
    if not isinstance(raw_categories, Mapping) or not raw_categories:
        raise TaxonomyError(f"{source}: 'categories' must be a non-empty mapping of category name → spec")

    entries: list[tuple[str, str, str]] = []  # (where, field, text) checked by the refusal policy
    for where, text in (("defaults", t) for t in base_templates):
        entries.append((where, "template", text))
    entries.append(("defaults", "negative prompt", base_negative))

    categories: list[Category] = []
    seen: dict[str, str] = {}
    for cat_name, spec in raw_categories.items():
        cwhere = f"category {cat_name!r}"
        entries.append((cwhere, "name", str(cat_name)))
        _name(cat_name, f"{source}: {cwhere}")
        if not isinstance(spec, Mapping):
            raise TaxonomyError(f"{source}: {cwhere} must be a mapping with 'tags'")
        unknown = set(spec) - {"exclusive", "description", "templates", "threshold", "negative", "tags"}
        if unknown:
            raise TaxonomyError(f"{source}: {cwhere}: unknown key(s) {sorted(unknown)}")
        exclusive = spec.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise TaxonomyError(f"{source}: {cwhere}: 'exclusive' must be true or false")
        description = str(spec.get("description") or "")
        templates = _templates(spec["templates"], f"{source}: {cwhere}.templates") if "templates" in spec \
            else base_templates
        thresholds = _thresholds(spec.get("threshold"), base_thresholds, f"{source}: {cwhere}.threshold")
        negative = _str_list(spec.get("negative", base_negative), f"{source}: {cwhere}.negative")[0]
        entries += [(cwhere, "description", description), (cwhere, "negative prompt", negative)]
        entries += [(cwhere, "template", t) for t in templates]
        raw_tags = spec.get("tags")
        if not isinstance(raw_tags, Mapping) or not raw_tags:
            raise TaxonomyError(f"{source}: {cwhere}: 'tags' must be a non-empty mapping of tag name → prompts")
        tags: list[Tag] = []
        for tag_name, tspec in raw_tags.items():
            twhere = f"{cwhere} → tag {tag_name!r}"
            entries.append((twhere, "name", str(tag_name)))
            _name(tag_name, f"{source}: {twhere}")
            if tag_name in seen:
                raise TaxonomyError(f"{source}: {twhere}: tag names are unique, already used in category "
                                    f"{seen[tag_name]!r}")
            seen[tag_name] = cat_name
            if not isinstance(tspec, Mapping):
                tspec = {"prompts": tspec}
            unknown = set(tspec) - {"prompts", "threshold", "description", "templates"}
            if unknown:
                raise TaxonomyError(f"{source}: {twhere}: unknown key(s) {sorted(unknown)}")
            phrases = _str_list(tspec.get("prompts", tag_name.replace("_", " ")), f"{source}: {twhere}.prompts")
            tag_templates = _templates(tspec["templates"], f"{source}: {twhere}.templates") if "templates" in tspec \
                else templates
            tag_description = str(tspec.get("description") or "")
            entries += [(twhere, "prompt", p) for p in phrases]
            entries += [(twhere, "template", t) for t in tag_templates if t not in templates]
            entries.append((twhere, "description", tag_description))
            tags.append(Tag(
                name=tag_name, category=cat_name, exclusive=exclusive, phrases=phrases, templates=tag_templates,
                thresholds=_thresholds(tspec.get("threshold"), thresholds, f"{source}: {twhere}.threshold"),
                description=tag_description,
            ))
        if exclusive and len(tags) < 2:
            raise TaxonomyError(f"{source}: {cwhere}: an exclusive category needs at least two tags")
        categories.append(Category(cat_name, exclusive, tuple(tags), negative, description))

    _check_refusals(source, [e for e in entries if e[2]])
    name = str(data.get("name") or Path(source).stem)
    # What the version hashes: everything that changes a score or a decision, in a canonical order
    # (file order and YAML key order are not content).
    content = {
        "name": name,
        "categories": [
            {"name": c.name, "exclusive": c.exclusive, "negative": c.negative,
             "tags": [{"name": t.name, "prompts": sorted(t.prompts), "thresholds": dict(sorted(t.thresholds.items()))}
                      for t in sorted(c.tags, key=lambda t: t.name)]}
            for c in sorted(categories, key=lambda c: c.name)
        ],
    }
    return Taxonomy(name=name, categories=tuple(categories), source=source, content=content)


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and validate a taxonomy YAML file; errors name the file and the offending entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_taxonomy(data, str(path))
