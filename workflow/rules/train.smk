rule train:
    """One training run. checkpoint.pt beside the outputs is not declared, so a failed or cancelled
    job keeps it and the retry resumes from it. The runtime-only settings (device, threads, ...) sit
    in the command, not in params: changing them never reruns a finished run."""
    input:
        lambda wildcards: f"{DATA}/{RUNS[wildcards.run].dataset}/prepared.json",
    output:
        model=f"{RESULTS}/{{run}}/model.pt",
        history=f"{RESULTS}/{{run}}/history.csv",
        record=f"{RESULTS}/{{run}}/run.json",
    params:
        data=DATA,
        args=lambda wildcards: " ".join(grid.train_arguments(RUNS[wildcards.run], config)),
        out=lambda wildcards: f"{RESULTS}/{wildcards.run}",
    log:
        "logs/train/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run}}.tsv"
    threads: config["threads"]
    retries: config["retries"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
        runtime=train_resource("runtime", 60),
        mem_mb=train_resource("mem_mb", 4000),
    shell:
        f"orthoreg train {{params.args}} {RUNTIME_ARGS} --out {{params.out}} --data-dir {{params.data}} >> {{log}} 2>&1"
