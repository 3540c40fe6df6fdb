rule data:
    """Fetch (or copy) and verify one dataset once; training jobs never download."""
    output:
        prepared_files("{dataset}"),
    log:
        "logs/data/{dataset}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/{{dataset}}.tsv"
    conda:
        "../envs/orthoreg.yaml"
    params:
        root=lambda wildcards, output: parent(output[0], 2),
    shell:
        # on screen too: a dataset that has to be installed or downloaded says so before it starts
        "orthoreg prepare-data --dataset {wildcards.dataset} --data-dir {params.root} 2>&1 | tee {log}"


if CIFAR_C:

    rule cifar_c:
        """The official corrupted test set of one dataset (CIFAR-10-C, CIFAR-100-C), downloaded and
        MD5-checked once into the config's robustness.cifar_c_dir, unless the folder is there already."""
        output:
            directory(f"{CIFAR_C}/{{archive}}"),
        log:
            "logs/cifar_c/{archive}.log",
        wildcard_constraints:
            archive="|".join(CIFAR_C_DATASETS),
        conda:
            "../envs/orthoreg.yaml"
        params:
            dataset=lambda wildcards: CIFAR_C_DATASETS[wildcards.archive],
            root=lambda wildcards, output: parent(output[0]),
        shell:
            "orthoreg prepare-data --dataset {params.dataset} --cifar-c --data-dir {params.root} 2>&1 | tee {log}"
