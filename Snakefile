# orthoreg: regenerate every table and figure of the paper.
#   snakemake --cores all --resources gpu=4                      the paper grid (config/config.yaml)
#   snakemake --cores all --configfile config/demo.yaml          the CPU demo on real Fashion-MNIST
#   snakemake --profile profiles/kubernetes --workflow-profile none   pods and a bucket (README)
# Logic lives in the `orthoreg` package; these rules only call its CLI, each job reading only its
# inputs and writing only its outputs, so no job needs a shared file system.


# the paper grid is the default; --configfile FILE is merged over it (config/README.md)
configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        report_outputs(),
