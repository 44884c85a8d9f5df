#!/usr/bin/env python3
"""Regenerate the CLIP zero-shot data files under sql/data/ from local copies of their sources.

Standard library only. Every output file in sql/data/ (except README.md and this script) is
written by this script; running it again over the same sources reproduces them byte for byte.

Sources and how to obtain a local copy of each
----------------------------------------------
1. CLIP_benchmark (MIT license, https://github.com/LAION-AI/CLIP_benchmark), PyPI wheel 1.6.2:
       python3 -m pip download clip_benchmark==1.6.2 --no-deps -d /tmp/cb
       (cd /tmp/cb && unzip -o clip_benchmark-1.6.2-py3-none-any.whl)
   --clip-benchmark-datasets /tmp/cb/clip_benchmark/datasets
   (uses en_classnames.json and en_zeroshot_classification_templates.json)

2. OpenAI CLIP data/prompts.md (MIT license, https://github.com/openai/CLIP), pinned commit:
       curl -L -o /tmp/openai_prompts.md \
         https://raw.githubusercontent.com/openai/CLIP/e184f608c5d5e58165682f7c332c3a8b4c1545f2/data/prompts.md
   (branch URL: https://raw.githubusercontent.com/openai/CLIP/main/data/prompts.md)
   --openai-prompts /tmp/openai_prompts.md
   The copy used had 72,430 characters, sha256
   f98d2d25e78cc1fee650240b519f7cb58a83cfcc5aa538cde52514809cf4a1c9.

3. country_converter (GPL-3.0, https://github.com/IndEcol/country_converter), PyPI 1.3.2; its
   bundled country_data.tsv gives, per ISO 3166-1 alpha-2 code, the UN M49 code and the UN M49
   sub-region / intermediate region ("UNregion" column). UN M49: https://unstats.un.org/unsd/methodology/m49/
       python3 -m pip download country_converter==1.3.2 --no-deps -d /tmp/coco
       (cd /tmp/coco && unzip -o country_converter-1.3.2-py3-none-any.whl)
   --country-data /tmp/coco/country_converter/country_data.tsv
   (read with the csv module; the package itself is not imported)

4. SUN397 class order (the dataset's ClassName.txt order, which torchvision.datasets.SUN397 and
   therefore CLIP_benchmark use for the integer labels). Either the official SUN397 ClassName.txt or
   the identical-format copy shipped in tensorflow-datasets (Apache-2.0), PyPI 4.9.10:
       python3 -m pip download tensorflow-datasets==4.9.10 --no-deps -d /tmp/tfds
       (cd /tmp/tfds && unzip -o tensorflow_datasets-4.9.10-py3-none-any.whl \
            tensorflow_datasets/image_classification/sun397_labels.txt)
   --sun397-classnames /tmp/tfds/tensorflow_datasets/image_classification/sun397_labels.txt

Usage
-----
    python3 sql/data/make_data.py \
        --clip-benchmark-datasets /tmp/cb/clip_benchmark/datasets \
        --openai-prompts /tmp/openai_prompts.md \
        --country-data /tmp/coco/country_converter/country_data.tsv \
        --sun397-classnames /tmp/tfds/tensorflow_datasets/image_classification/sun397_labels.txt

Outputs (relative to --out, default: the directory holding this script):
    classnames/<slug>.csv          label_index,name
    templates/<slug>.csv           template   (CLIP_benchmark's templates, else OpenAI's)
    templates/<slug>_openai.csv    template   (OpenAI prompts.md templates, where it has the dataset)
    country211_regions.csv         label_index,code,name,m49_region,m49_subregion,region
"""

import argparse
import ast
import csv
import io
import json
import os
import re
import sys

# slug -> section title in OpenAI's prompts.md (None: not covered by prompts.md)
DATASETS = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "imagenet1k": None,  # prompts.md points to a notebook for ImageNet
    "food101": "Food101",
    "cars": "StanfordCars",
    "fgvc_aircraft": "FGVCAircraft",
    "birdsnap": "Birdsnap",
    "sun397": "SUN397",
    "country211": "Country211",
    "renderedsst2": "SST2",
    "fer2013": "FacialEmotionRecognition2013",
    "dtd": "DescribableTextures",
    "eurosat": "EuroSAT",
    "resisc45": "RESISC45",
    "mnist": "MNIST",
    "stl10": "STL10",
    "pets": "OxfordPets",
}

EXPECTED_CLASS_COUNTS = {
    "cifar10": 10, "cifar100": 100, "imagenet1k": 1000, "food101": 101, "cars": 196,
    "fgvc_aircraft": 100, "birdsnap": 500, "sun397": 397, "country211": 211,
    "renderedsst2": 2, "fer2013": 7, "dtd": 47, "eurosat": 10, "resisc45": 45,
    "mnist": 10, "stl10": 10, "pets": 37,
}

# Duplicate names kept as the source has them (OpenAI's curated ImageNet names, used by CLIP_benchmark:
# labels 657/744 are both "missile", 836/837 are both "sunglasses").
KNOWN_DUPLICATE_NAMES = {"imagenet1k": ["missile", "sunglasses"]}

# Country211's class folders are ISO 3166-1 alpha-2 codes; torchvision.datasets.Country211 is an
# ImageFolder, so label i is the i-th code in sorted order. Checked below: sorted, 211 unique, and
# each code's country_converter regex matches CLIP_benchmark's "country211" name at that index.
COUNTRY211_CODES = (
    "AD AE AF AG AI AL AM AO AQ AR AT AU AW AX AZ BA BB BD BE BF BG BH BJ BM BN BO BQ BR BS BT "
    "BW BY BZ CA CD CF CH CI CK CL CM CN CO CR CU CV CW CY CZ DE DK DM DO DZ EC EE EG ES ET FI "
    "FJ FK FO FR GA GB GD GE GF GG GH GI GL GM GP GR GS GT GU GY HK HN HR HT HU ID IE IL IM IN "
    "IQ IR IS IT JE JM JO JP KE KG KH KN KP KR KW KY KZ LA LB LC LI LK LR LT LU LV LY MA MC MD "
    "ME MF MG MK ML MM MN MO MQ MR MT MU MV MW MX MY MZ NA NC NG NI NL NO NP NZ OM PA PE PF PG "
    "PH PK PL PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SS SV "
    "SX SY SZ TG TH TJ TL TM TN TO TR TT TW TZ UA UG US UY UZ VA VE VG VI VN VU WS XK YE ZA ZM ZW"
).split()

# UN M49 sub-regions (and, inside "Latin America and the Caribbean" and "Sub-Saharan Africa",
# the M49 intermediate regions, as country_converter's UNregion column gives them) -> M49 region.
M49_SUBREGION_TO_REGION = {
    "Northern Africa": "Africa", "Eastern Africa": "Africa", "Middle Africa": "Africa",
    "Southern Africa": "Africa", "Western Africa": "Africa",
    "Caribbean": "Americas", "Central America": "Americas", "South America": "Americas",
    "Northern America": "Americas",
    "Central Asia": "Asia", "Eastern Asia": "Asia", "South-eastern Asia": "Asia",
    "Southern Asia": "Asia", "Western Asia": "Asia",
    "Eastern Europe": "Europe", "Northern Europe": "Europe", "Southern Europe": "Europe",
    "Western Europe": "Europe",
    "Australia and New Zealand": "Oceania", "Melanesia": "Oceania", "Micronesia": "Oceania",
    "Polynesia": "Oceania",
}

# Coarse region used by the project, derived from the M49 sub-region.
SUBREGION_TO_COARSE = {
    "Northern Europe": "Europe", "Southern Europe": "Europe", "Eastern Europe": "Europe",
    "Western Europe": "Europe",
    "Northern America": "North America",
    "Central America": "Central America & Caribbean", "Caribbean": "Central America & Caribbean",
    "South America": "South America",
    "Eastern Asia": "East Asia",
    "South-eastern Asia": "Southeast Asia",
    "Southern Asia": "South Asia",
    "Central Asia": "Central Asia",
    "Western Asia": "Middle East",
    "Northern Africa": "Africa", "Eastern Africa": "Africa", "Middle Africa": "Africa",
    "Southern Africa": "Africa", "Western Africa": "Africa",
    "Australia and New Zealand": "Oceania", "Melanesia": "Oceania", "Micronesia": "Oceania",
    "Polynesia": "Oceania",
}
COARSE_OVERRIDES = {"IR": "Middle East", "AQ": "Antarctica"}
COARSE_REGIONS = (
    "Europe", "North America", "Central America & Caribbean", "South America", "East Asia",
    "Southeast Asia", "South Asia", "Central Asia", "Middle East", "Africa", "Oceania", "Antarctica",
)
# Codes that UN M49 does not list; country_converter still gives them a sub-region, which is used.
NOT_IN_M49 = {"XK", "TW"}


def fail(msg):
    sys.exit("make_data.py: " + msg)


def parse_openai_prompts(path):
    """Return {section title: {"classes": [...], "templates": [...]}} from prompts.md."""
    text = open(path, encoding="utf-8").read()
    sections = {}
    for m in re.finditer(r"^## (.+?)\n\n```bash\n(.*?)```", text, re.S | re.M):
        body = {}
        for lm in re.finditer(r"^(classes|templates) = (\[.*?^\])", m.group(2), re.S | re.M):
            body[lm.group(1)] = ast.literal_eval(lm.group(2))
        if set(body) != {"classes", "templates"}:
            fail("could not parse section %r of %s" % (m.group(1), path))
        sections[m.group(1)] = body
    return sections


def norm(name):
    return name.replace("_", " ").replace("/", " ")


def write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def sun397_order(openai_classes, classname_path):
    """Reorder OpenAI's SUN397 names into ClassName.txt order (CLIP_benchmark's name rule:
    strip the '/x/' prefix, then replace '_' and '/' with spaces)."""
    raw = [l.strip() for l in open(classname_path, encoding="utf-8") if l.strip()]
    names = [norm(r[3:]) for r in raw]
    if sorted(names) != sorted(openai_classes) or len(set(names)) != len(names):
        fail("SUN397 names from %s do not match prompts.md" % classname_path)
    return names


def country_rows(cb_names, country_tsv):
    with open(country_tsv, encoding="utf-8") as f:
        records = [r for r in csv.DictReader(f, delimiter="\t") if r["ISO2"]]
    table = {}
    for code in COUNTRY211_CODES:
        # the ISO2 column is a plain code, or a regex for a few rows (e.g. "^GB$|^UK$", "^GR$|^EL$")
        hits = [r for r in records
                if r["ISO2"] == code or ("^" in r["ISO2"] and re.fullmatch(r["ISO2"], code))]
        if len(hits) > 1:
            fail("%s matches %d rows of %s" % (code, len(hits), country_tsv))
        if hits:
            table[code] = hits[0]
    if len(COUNTRY211_CODES) != 211 or len(set(COUNTRY211_CODES)) != 211:
        fail("COUNTRY211_CODES must hold 211 unique codes")
    if list(COUNTRY211_CODES) != sorted(COUNTRY211_CODES):
        fail("COUNTRY211_CODES must be sorted (ImageFolder order)")
    rows = []
    for i, (code, name) in enumerate(zip(COUNTRY211_CODES, cb_names)):
        rec = table.get(code)
        if rec is None:
            fail("%s not in %s" % (code, country_tsv))
        # country_converter's regex must match CLIP_benchmark's name (catches misalignment)
        if not re.search(rec["regex"], name, re.I):
            fail("country_converter regex for %s does not match %r" % (code, name))
        if code in NOT_IN_M49:
            if rec["UNcode"]:
                fail("%s unexpectedly has an M49 code" % code)
        elif not rec["UNcode"]:
            fail("%s has no M49 code in %s" % (code, country_tsv))
        if code == "AQ":
            m49_region, m49_sub = "", ""  # M49 lists Antarctica (010) under no region
        else:
            m49_sub = rec["UNregion"]
            if m49_sub not in M49_SUBREGION_TO_REGION:
                fail("unexpected UNregion %r for %s" % (m49_sub, code))
            m49_region = M49_SUBREGION_TO_REGION[m49_sub]
        region = COARSE_OVERRIDES.get(code) or SUBREGION_TO_COARSE[m49_sub]
        assert region in COARSE_REGIONS
        rows.append([i, code, name, m49_region, m49_sub, region])
    return rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip-benchmark-datasets", required=True,
                    help="clip_benchmark/datasets directory (from clip_benchmark==1.6.2)")
    ap.add_argument("--openai-prompts", required=True, help="local copy of openai/CLIP data/prompts.md")
    ap.add_argument("--country-data", required=True, help="country_converter/country_data.tsv")
    ap.add_argument("--sun397-classnames", required=True,
                    help="SUN397 ClassName.txt (or tensorflow_datasets' sun397_labels.txt)")
    ap.add_argument("--out", default=here, help="output directory (default: %(default)s)")
    args = ap.parse_args()

    cb_dir = args.clip_benchmark_datasets
    cb_classes = json.load(open(os.path.join(cb_dir, "en_classnames.json"), encoding="utf-8"))
    cb_templates = json.load(open(os.path.join(cb_dir, "en_zeroshot_classification_templates.json"),
                                  encoding="utf-8"))
    oa = parse_openai_prompts(args.openai_prompts)

    summary = []
    for slug, section in DATASETS.items():
        oa_sec = oa.get(section) if section else None
        if section and oa_sec is None:
            fail("prompts.md has no section %r" % section)
        # class names
        if slug in cb_classes:
            classes, class_src = cb_classes[slug], "clip_benchmark"
        elif slug == "sun397":
            classes = sun397_order(oa_sec["classes"], args.sun397_classnames)
            class_src = "openai(reordered)"
        else:
            classes, class_src = oa_sec["classes"], "openai"
        if not all(isinstance(c, str) and c for c in classes):
            fail("%s: class names must be non-empty strings" % slug)
        if len(classes) != EXPECTED_CLASS_COUNTS[slug]:
            fail("%s: %d classes, expected %d" % (slug, len(classes), EXPECTED_CLASS_COUNTS[slug]))
        dups = sorted({c for c in classes if classes.count(c) > 1})
        if dups != KNOWN_DUPLICATE_NAMES.get(slug, []):
            fail("%s: duplicate class names %r" % (slug, dups))
        write_csv(os.path.join(args.out, "classnames", slug + ".csv"), ["label_index", "name"],
                  [[i, c] for i, c in enumerate(classes)])
        # templates
        if slug in cb_templates:
            templates, tmpl_src = cb_templates[slug], "clip_benchmark"
        else:
            templates, tmpl_src = oa_sec["templates"], "openai"
        for t in templates:
            if "{c}" not in t and "{}" not in t:
                fail("%s: template without placeholder: %r" % (slug, t))
        write_csv(os.path.join(args.out, "templates", slug + ".csv"), ["template"],
                  [[t] for t in templates])
        n_oa = None
        if oa_sec is not None:
            for t in oa_sec["templates"]:
                if "{}" not in t:
                    fail("%s: OpenAI template without {}: %r" % (slug, t))
            write_csv(os.path.join(args.out, "templates", slug + "_openai.csv"), ["template"],
                      [[t] for t in oa_sec["templates"]])
            n_oa = len(oa_sec["templates"])
        summary.append((slug, len(classes), class_src, len(templates), tmpl_src, n_oa))

    rows = country_rows(cb_classes["country211"], args.country_data)
    write_csv(os.path.join(args.out, "country211_regions.csv"),
              ["label_index", "code", "name", "m49_region", "m49_subregion", "region"], rows)

    print("%-14s %7s %-18s %9s %-15s %s" % ("slug", "classes", "class source", "templates",
                                           "template source", "openai templates"))
    for s in summary:
        print("%-14s %7d %-18s %9d %-15s %s" % (s[0], s[1], s[2], s[3], s[4], "-" if s[5] is None else s[5]))
    counts = {}
    for r in rows:
        counts[r[5]] = counts.get(r[5], 0) + 1
    print("country211 regions:", ", ".join("%s %d" % (k, counts.get(k, 0)) for k in COARSE_REGIONS))


if __name__ == "__main__":
    main()
