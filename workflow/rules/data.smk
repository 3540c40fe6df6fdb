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
        # on screen too: a dataset that has to be installed or downloaded says so before it starts
        "orthoreg prepare-data --dataset {wildcards.dataset} --data-dir {params.data} 2>&1 | tee {log}"
