rule data:
    """Fetch (or copy) and verify one dataset once; training jobs never download."""
    output:
        f"{DATA}/{{dataset}}/prepared.json",
    log:
        "logs/data/{dataset}.log",
    params:
        data=DATA,
    benchmark:
        f"{RESULTS}/benchmarks/data/{{dataset}}.tsv"
    shell:
        "orthoreg prepare-data --dataset {wildcards.dataset} --data-dir {params.data} > {log} 2>&1"
