"""The documentation (README.md and docs/*.md) points at things that exist.

Every relative link and ``#anchor`` resolves (GitHub's heading slugs), and every command shown, in a
``bash`` block or as inline code, names a module, script, file, config, config key and option that the
repository has: ``python -m X`` modules exist, ``bash path.sh`` scripts and repository paths exist,
``run_all`` arguments parse with its own parser, ``classification.train`` configs and override keys are
declared, other modules' ``--options`` are defined in their source, and ``fairseq-train`` names this
package's user dir, criterion and criterion options. External programs come from a short list.
"""

from __future__ import annotations

import itertools
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP_LEVEL = ("common", "classification", "detection", "translation", "benchmarks", "tests", "docs", ".ci")
PYTHONS = ("python", "python3", ".venv/bin/python")
# programs that are not this repository's; their own options are theirs to check
EXTERNAL = {"conda", "pip", "tensorboard", "sudo", "apt-get", "fairseq-preprocess", "fairseq-generate", "eval",
            "tmux", "screen", "sinfo", "scontrol", "scancel", "squeue", "sbatch"}
PLACEHOLDER = re.compile(r"[<>{}*…]|\.\.\.|\b[A-Z][A-Z_]{2,}\b")  # <id>, {path}, ROOT, CONFIG, ...
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def _blocks(text: str, langs: tuple[str, ...]) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in langs]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lowercased, punctuation other than '-' and '_'
    dropped, each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("**", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(path.read_text()).splitlines():
        match = re.match(r"^#{1,6} (.+?)\s*#*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def test_the_slug_rules_are_githubs():
    assert slug("mmdet's own baseline") == "mmdets-own-baseline"
    assert slug("Where p_{t-1} comes from: snapshot or store") == "where-p_t-1-comes-from-snapshot-or-store"
    assert slug("`common/` figures (2 cores, one thread)") == "common-figures-2-cores-one-thread"


def _links(path: Path) -> list[str]:
    prose = INLINE_CODE.sub("", _prose(path.read_text()))
    return re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", prose)


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file or heading does not exist."""
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z]+:", link):
            continue  # http(s), mailto: outside the repository
        target, _, anchor = link.partition("#")
        where = (page.parent / target).resolve() if target else page
        if not where.exists():
            broken.append(f"{link}: no {where}")
        elif anchor and (where.suffix != ".md" or anchor not in anchors(where)):
            broken.append(f"{link}: no heading '#{anchor}' in {where.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_a_missing_file_or_heading_is_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## A section\n\n[ok](#a-section) [ok](page.md#top) [x](#nowhere) [y](gone.md)\n"
                    "`[not](a-link.md)`\n\n```bash\n[nor](this.md)\n```\n")
    assert [b.split(":")[0] for b in broken_links(page)] == ["#nowhere", "gone.md"]


def test_the_readme_links_every_docs_page_and_the_index_lists_them():
    readme, index = (REPO / "README.md").read_text(), (REPO / "docs/README.md").read_text()
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"(docs/{page.name})" in readme, page.name
            assert f"({page.name})" in index, page.name


# ---- commands -------------------------------------------------------------------------------------------


def _commands(page: Path) -> list[str]:
    """The commands of a page: each line of its bash blocks (continuations joined, `&&` and `|` split),
    and each inline code span that starts like a command."""
    text = page.read_text()
    lines = []
    for block in _blocks(text, ("bash", "sh", "console")):
        lines += block.replace("\\\n", " ").splitlines()
    for span in INLINE_CODE.findall(_prose(text)):
        span = " ".join(span.split())
        if re.match(r"^(\w+=\S+ )*(python3? -m|\.venv/bin/python -m|bash \S+\.sh|torchrun|fairseq-train) ", span):
            lines.append(span)
    commands = []
    for line in lines:
        for part in re.split(r"&&|\|\||\|(?!\w)|;", line):
            words = shlex.split(part, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]  # VAR=value before a command
            if words:
                # `a|b|c` inside a word shows alternatives (smoke|demo|paper): each is checked
                commands += [list(c) for c in itertools.product(*(w.split("|") if "|" in w else [w] for w in words))]
    return commands


@cache
def _source(module: str) -> str:
    """The source of a repository module (its file, or its package's __main__), '' for another's."""
    base = REPO / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__main__.py"):
        if path.is_file():
            return path.read_text()
    return ""


def _module_exists(module: str) -> bool:
    if module.split(".")[0] in TOP_LEVEL:
        return bool(_source(module))
    import importlib.util

    return importlib.util.find_spec(module.split(".")[0]) is not None


@cache
def _config_keys() -> frozenset[str]:
    from classification.config import flatten, load_config

    return frozenset(flatten(load_config(None)))


def _check_repo_path(word: str, where: str) -> None:
    word = word.split("=", 1)[-1]
    if PLACEHOLDER.search(word) or not word.startswith(tuple(d + "/" for d in TOP_LEVEL)):
        return  # an output (results/, data/, runs/), a placeholder, or not a path
    assert (REPO / word).exists(), f"{where}: {word} does not exist"


def _check_options(module: str, args: list[str], where: str) -> None:
    """Every ``--option`` given to a repository module is one that its source defines."""
    source = _source(module)
    for arg in args:
        if arg == "--":
            break  # what follows goes to another program (translation.run -> fairseq-train)
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            # an option string, or a name that a loop of the source makes into f"--{name}"
            made = 'add_argument(f"--{' in source and re.search(rf"""["']{option[2:]}["']""", source)
            defined = f'"{option}"' in source or f"'{option}'" in source or made
            assert defined, f"{where}: {module} has no option {option}"


def _check_classification(args: list[str], where: str) -> None:
    configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
    for name in configs:
        if not PLACEHOLDER.search(name):
            assert (REPO / "classification/configs" / f"{name}.yaml").is_file(), f"{where}: no config {name}"
    for arg in args:
        if "=" in arg and not arg.startswith("-") and re.match(r"^[a-z_]+(\.[a-zA-Z_]+)*=", arg):
            key = arg.split("=", 1)[0]
            assert key in _config_keys(), f"{where}: {key} is not a classification config key"


def _check_run_all(args: list[str], where: str) -> None:
    from benchmarks.run_all import parse_args

    args = [arg for arg in args if not PLACEHOLDER.fullmatch(arg)]  # `run_all PROFILE`: any profile
    try:
        parsed = parse_args(args)
    except SystemExit:
        raise AssertionError(f"{where}: run_all does not accept {' '.join(args)}") from None
    for table in (parsed.only or "").split(","):
        if table and table not in _documented_example_tables():
            assert (REPO / "benchmarks/tables" / f"{table}.yaml").is_file(), f"{where}: no table {table}"


@cache
def _documented_example_tables() -> frozenset[str]:
    """The ids of the example specs that the documentation shows in full (to be added by a reader)."""
    text = "".join("".join(_blocks(page.read_text(), ("yaml",))) for page in PAGES)
    return frozenset(re.findall(r"^id: (\w+)", text, re.M))


def _check_module(module: str, args: list[str], where: str) -> None:
    assert _module_exists(module), f"{where}: no module {module}"
    if module.split(".")[0] not in TOP_LEVEL:
        return
    for arg in args:
        _check_repo_path(arg, where)
    if module == "benchmarks.run_all":
        _check_run_all(args, where)
        return
    _check_options(module, args, where)
    if module in ("classification.train", "classification.search"):
        _check_classification(args, where)


def _check_fairseq_train(args: list[str], where: str) -> None:
    user_dir = args[args.index("--user-dir") + 1]
    assert (REPO / user_dir).is_dir(), f"{where}: no user dir {user_dir}"
    criterion = args[args.index("--criterion") + 1] if "--criterion" in args else None
    if criterion == "pskd":
        assert '@register_criterion("pskd"' in (REPO / "translation/criterion.py").read_text()
    source = "".join(p.read_text() for p in (REPO / user_dir).glob("*.py"))
    for arg in args:
        if arg.startswith(("--pskd-", "--alpha-")):
            field = arg[2:].split("=", 1)[0].replace("-", "_")
            assert re.search(rf"^\s+{field}:", source, re.M), f"{where}: the criterion has no option {arg}"


def check_command(words: list[str], where: str) -> None:
    program, args = words[0], words[1:]
    if program in PYTHONS:
        assert args[0] == "-m", f"{where}: run modules with -m: {' '.join(words)}"
        _check_module(args[1], args[2:], where)
    elif program == "torchrun":
        at = args.index("-m")
        _check_module(args[at + 1], args[at + 2:], where)
    elif program == "bash":
        script = args[0]
        assert (REPO / script).is_file(), f"{where}: no script {script}"
        if script == "benchmarks/run_all.sh":
            _check_run_all(args[1:], where)
    elif program == "export":
        name = args[0].split("=", 1)[0]
        assert any(name in p.read_text() for p in (REPO / "benchmarks/profiles").glob("*.yaml")) or \
            name in (REPO / "benchmarks/setup_env.sh").read_text(), f"{where}: nothing reads {name}"
    elif program == "fairseq-train":
        _check_fairseq_train(args, where)
    else:
        assert program in EXTERNAL, f"{where}: unknown program {program}"
    for arg in args:
        _check_repo_path(arg, where)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_shown_names_what_the_repository_has(page):
    for words in _commands(page):
        check_command(words, f"{page.relative_to(REPO)}: {' '.join(words)}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_and_repository_path_in_the_prose_exists(page):
    prose = _prose(page.read_text())
    for module in re.findall(r"python3? -m\s+([A-Za-z_][\w.]*)", prose):
        assert _module_exists(module), f"{page.name}: no module {module}"
    criterion = "".join(p.read_text() for p in (REPO / "translation").glob("*.py"))
    for span in INLINE_CODE.findall(prose):
        if re.fullmatch(r"[\w.-]+(/[\w.-]+)*/?", span):
            _check_repo_path(span, f"{page.name}: `{span}`")
        # classification config keys shown as `method.alpha_T` or `runtime.amp=auto`
        for key in re.findall(r"(?:^|\s)((?:data|model|method|optim|runtime|regularizer)\.[A-Za-z_]+)(?==|\s|$)", span):
            assert key in _config_keys(), f"{page.name}: `{span}`: {key} is not a classification config key"
        # the fairseq criterion's own options
        for option in re.findall(r"(?:^|\s)--((?:pskd|alpha)-[\w-]+)", span):
            field = option.replace("-", "_")
            assert re.search(rf"^\s+{field}:", criterion, re.M), f"{page.name}: `{span}`: no option --{option}"


@pytest.mark.parametrize("command", [
    "python -m classification.nowhere",
    "bash benchmarks/nowhere.sh",
    "bash benchmarks/run_all.sh paper --no-such-option",
    "bash benchmarks/run_all.sh paper --only no_such_table",
    "python -m classification.train --config no_such_config",
    "python -m classification.train --config demo/ps_kd method.no_such_key=1",
    "python -m detection.train detection/configs/no_such_config.py",
    "python -m translation.run train --no-such-option",
    "fairseq-train x --user-dir translation --criterion pskd --pskd-no-such-option 1",
    "export PSKD_NOTHING=/data",
    "frobnicate --all",
])
def test_the_checks_catch_what_does_not_exist(command):
    with pytest.raises(AssertionError):
        check_command(shlex.split(command), "test")
