"""The two sides of a review, each built from git in a temporary folder.

A side is a commit (extracted with ``git archive``) or the working tree (tracked files and
untracked ones git does not ignore, uncommitted changes included), copied into a scratch
folder, never read in place; each side then goes through the same load → validate → render
calls as ``dac build``, with its own templates, data and version lock. The ``dac`` library is
the one running (HEAD's), for both sides.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from dac.compile import CompiledRule, compile_rules
from dac.errors import DacError, Location
from dac.loader import rule_files
from dac.lock import VersionLock
from dac.project import LOCK_FILE
from dac.render.environment import Templates

WORKING_TREE = "working tree"
DEFAULT_UPSTREAMS = ("origin/main", "main")
SHALLOW_HINT = (
    "this clone is shallow: fetch more history (`git fetch --unshallow`, or `fetch-depth: 0` "
    "for actions/checkout) and run again"
)


@dataclass(frozen=True)
class Revision:
    """What one side is: a commit, or the working tree (``commit`` None)."""

    label: str  # as the user named it, e.g. ``origin/main`` or ``working tree``
    commit: str | None = None

    @property
    def short(self) -> str:
        return self.commit[:12] if self.commit else WORKING_TREE


@dataclass
class Side:
    """One side, built: its rules by rule_id, its lock, its shared files, and what failed."""

    revision: Revision
    root: Path  # the scratch copy
    rules: dict[str, CompiledRule] = field(default_factory=dict)
    lock: VersionLock | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path → SHA-256 of its content
    problems: list[DacError] = field(default_factory=list)
    templates: Templates | None = None

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def version_of(self, rule_id: str) -> int:
        assert self.lock is not None
        return self.lock.version_of(self.rules[rule_id])


class Git:
    """The few git commands a review needs, run in the repository holding the project."""

    def __init__(self, path: Path) -> None:
        top = self._run(["rev-parse", "--show-toplevel"], cwd=path, what=f"{path} is not in a git repository")
        self.top = Path(top.decode().strip())

    def _run(self, args: list[str], cwd: Path | None = None, what: str = "") -> bytes:
        done = subprocess.run(["git", *args], cwd=cwd or self.top, capture_output=True, check=False)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise DacError(what or f"git {' '.join(args)}: {detail[-1] if detail else 'failed'}")
        return done.stdout

    def _ok(self, args: list[str]) -> bool:
        return subprocess.run(["git", *args], cwd=self.top, capture_output=True, check=False).returncode == 0

    @property
    def shallow(self) -> bool:
        return self._run(["rev-parse", "--is-shallow-repository"]).decode().strip() == "true"

    def commit(self, ref: str) -> str | None:
        if not self._ok(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]):
            return None
        return self._run(["rev-parse", "--verify", f"{ref}^{{commit}}"]).decode().strip()

    def revision(self, ref: str) -> Revision:
        commit = self.commit(ref)
        if commit is None:
            hint = f"; {SHALLOW_HINT}" if self.shallow else ""
            raise DacError(f"unknown revision {ref!r}: no such commit in this repository{hint}")
        return Revision(ref, commit)

    def default_base(self, head: Revision) -> Revision:
        """The merge base of HEAD with origin/main, or with main when there is no origin/main."""
        for upstream in DEFAULT_UPSTREAMS:
            if self.commit(upstream) is None:
                continue
            done = subprocess.run(
                ["git", "merge-base", head.commit or "HEAD", upstream],
                cwd=self.top,
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                hint = SHALLOW_HINT if self.shallow else "the two histories share no commit"
                raise DacError(f"no merge base of HEAD and {upstream}: {hint}")
            return Revision(f"merge base with {upstream}", done.stdout.decode().strip())
        hint = f"; {SHALLOW_HINT}" if self.shallow else ""
        raise DacError(
            f"no BASE given and neither {' nor '.join(DEFAULT_UPSTREAMS)} exists: name one, "
            f"e.g. `dac diff HEAD~1`{hint}"
        )

    def extract(self, revision: Revision, paths: list[str], dest: Path) -> None:
        """Copy ``paths`` (folders relative to the top) of ``revision`` into ``dest``."""
        if revision.commit is None:
            self._copy_working_tree(paths, dest)
            return
        present = [
            p for p in paths if self._run(["ls-tree", "--name-only", revision.commit, "--", p]).strip()
        ]
        if not present:
            return
        archive = self._run(["archive", "--format=tar", revision.commit, "--", *present])
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            try:
                tar.extractall(dest, filter="data")  # no links or paths that leave dest
            except tarfile.FilterError as exc:
                raise DacError(f"{revision.short}: refusing to extract {exc}") from None

    def _copy_working_tree(self, paths: list[str], dest: Path) -> None:
        listed = self._run(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths])
        for name in sorted({n for n in listed.decode("utf-8", "surrogateescape").split("\0") if n}):
            source = self.top / name
            if not source.exists() and not source.is_symlink():
                continue  # deleted but not yet committed
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                resolved = source.resolve()
                if not resolved.is_relative_to(self.top.resolve()) or not resolved.is_file():
                    raise DacError(f"{name}: a symbolic link that leaves the repository; refusing to read it")
            shutil.copyfile(source, target)


def build_side(git: Git, revision: Revision, project_root: Path, scratch: Path) -> Side:
    """Extract the project's detections/ and templates/ at ``revision`` and compile every rule."""
    prefix = project_root.resolve().relative_to(git.top.resolve())
    folders = [(prefix / "detections").as_posix(), (prefix / "templates").as_posix()]
    git.extract(revision, [f.removeprefix("./") for f in folders], scratch)
    root = scratch / prefix
    side = Side(revision, root)
    detections, templates = root / "detections", root / "templates"
    for folder in (detections, templates):
        if folder.is_dir():
            side.files.update(
                {
                    side.relative(p): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in folder.rglob("*")
                    if p.is_file()
                }
            )
    try:
        if not detections.is_dir():
            raise DacError(f"{(prefix / 'detections').as_posix()}/ does not exist at {revision.short}")
        side.templates = Templates(templates)
        side.lock = VersionLock.load(detections / LOCK_FILE)
        compiled, problems = compile_rules(rule_files(detections), side.templates)
    except DacError as exc:
        side.problems.append(_relocated(exc, side))
        return side
    side.problems.extend(_relocated(p, side) for p in problems)
    side.rules = {c.rule.rule_id: c for c in compiled}
    return side


def _relocated(problem: DacError, side: Side) -> DacError:
    """A problem found in the scratch copy, pointed at the file as the user knows it.

    Working-tree files keep their path relative to the repository; a commit's files read
    ``<commit>:path``, the way git names them.
    """
    scratch = str(side.root.resolve()) + "/"
    prefix = "" if side.revision.commit is None else f"{side.revision.short}:"
    problem.message = problem.message.replace(scratch, prefix).replace(str(side.root) + "/", prefix)
    if problem.location is not None:
        path = problem.location.path
        for root in (scratch, str(side.root) + "/"):
            if path.startswith(root):
                path = prefix + path.removeprefix(root)
        problem.location = Location(path, problem.location.line, problem.location.column)
    return problem
