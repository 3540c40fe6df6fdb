"""profiles/kubernetes as far as it goes without a cluster: the profile parses and plans the paper grid
with no shared file system, and the job the Kubernetes executor plugin submits for a training run asks
for one NVIDIA GPU. The plugin talks to a stand-in Kubernetes API server here (a kubeconfig naming a
local HTTP server that records what it is sent and reports each job failed), so the test reads the
very Job object the plugin would create on a cluster. The bucket is a folder (the fs storage plugin)."""

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from orthoreg.data import SPLITS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = ROOT / "profiles" / "kubernetes"
# the grid of the job-spec test: one run of the paper recipe, trained on a GPU, and not retried
ONE_RUN = {
    "datasets": ["cifar10"],
    "models": ["resnet20"],
    "regularizers": ["dn_relaxed"],
    "seeds": [0],
    "ablations": None,
    "retries": 0,
}


class KubernetesStandIn(BaseHTTPRequestHandler):
    """Answers what snakemake-executor-plugin-kubernetes asks: it keeps every object it is sent,
    reports every job failed (so the run ends at once), lists no pods and deletes anything."""

    created: list[dict]

    def log_message(self, *args):
        pass

    def reply(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.created.append({"path": self.path, "body": body})
        self.reply(body, 201)

    def do_GET(self):
        if self.path.startswith("/api/v1/namespaces/default/pods"):
            self.reply({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
            return
        job = next(item["body"] for item in self.created if item["path"].endswith("/jobs"))
        self.reply({**job, "status": {"failed": 1}})

    def do_DELETE(self):
        self.reply({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})


@pytest.fixture
def kubernetes_api(tmp_path, monkeypatch):
    """A kubeconfig in KUBECONFIG naming the stand-in server; yields the list of created objects."""
    handler = type("Handler", (KubernetesStandIn,), {"created": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "tester", "user": {"token": "none"}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "tester"}}],
        "current-context": "stand-in",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    yield handler.created
    server.shutdown()


def snakemake_kubernetes(tmp_path, *args):
    """Snakemake from the repository root with profiles/kubernetes, the bucket a local folder."""
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(BIN / "snakemake"),
        *("--profile", str(PROFILE), "--workflow-profile", "none"),
        *("--directory", str(tmp_path / "work")),
        *("--default-storage-provider", "fs", "--default-storage-prefix", str(tmp_path / "bucket")),
        *args,
    ]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def test_the_profile_is_the_one_the_readme_documents():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "kubernetes"
    assert profile["shared-fs-usage"] == "none"
    assert {
        profile["set-resources"][rule]["gpu_manufacturer"] for rule in ("train", "evaluate", "robustness")
    } == {"nvidia"}
    readme = (ROOT / "README.md").read_text()
    assert "snakemake --profile profiles/kubernetes --workflow-profile none" in readme


def test_a_dry_run_plans_the_paper_grid_without_a_shared_file_system(tmp_path, kubernetes_api):
    result = snakemake_kubernetes(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["evaluate"] > counts["robustness"] > 0
    assert counts["data"] == counts["cifar_c"] == 2 and counts["report"] == 1
    assert "(send to storage)" in result.stdout
    assert not (tmp_path / "bucket").exists() and kubernetes_api == []


def test_a_training_job_asks_kubernetes_for_one_nvidia_gpu(tmp_path, kubernetes_api):
    """The prepared dataset is put in the bucket first, so the only job is the training run."""
    dataset = tmp_path / "bucket" / "data" / "cifar10"
    dataset.mkdir(parents=True)
    for name in (*(f"{split}.pt" for split in SPLITS), "prepared.json"):
        (dataset / name).write_text("a stand-in: the job never runs")
    (tmp_path / "one_run.yaml").write_text(yaml.safe_dump(ONE_RUN))
    one_run = ("--until", "train", "--configfile", str(tmp_path / "one_run.yaml"))
    result = snakemake_kubernetes(tmp_path, *one_run, "--seconds-between-status-checks", "1")
    assert result.returncode != 0  # the stand-in reports the job failed
    (job,) = [item["body"] for item in kubernetes_api if item["path"].endswith("/namespaces/default/jobs")]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    requests = container["resources"]["requests"]
    assert requests["nvidia.com/gpu"] == "1"
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    assert toleration in pod["tolerations"]
    assert requests["cpu"] == "3800m"  # config.yaml's threads: 4, times the plugin's default cpu_scalar 0.95
    assert requests["memory"] == "16000M"  # config.yaml's resources.mem_mb for resnet20 (its default)
    assert container["image"] == yaml.safe_load((PROFILE / "config.yaml").read_text())["container-image"]
    command = container["args"][-1]
    assert "--target-jobs 'train:run=runs/cifar10/resnet20/dn_relaxed/" in command
    assert re.search(r"--default-storage-provider '?fs'?", command)  # the job reads the bucket itself
