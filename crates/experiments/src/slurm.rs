//! A grid as Slurm job arrays: `tasks/NNNN.json` per task, one list per dependency stage (a
//! task's stage is one more than its deepest dependency's), an array script that runs one task
//! per array index with `cargo xtask run-task`, and `submit.sh`, which chains the stages with
//! `--dependency=afterok`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use train::device::DeviceSpec;
use train::run::write_atomic;

use crate::grid::Grid;
use crate::{Error, Result};

/// How the emitted jobs run.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// The job name (`prunebench-table2`); the array script is `<name>.sbatch` without the
    /// `prunebench-` prefix.
    pub job_name: String,
    /// Where each task trains: a CUDA device asks Slurm for one GPU (`--gres=gpu:1`), which the
    /// job sees as `cuda:0`; the CPU asks for none.
    pub device: DeviceSpec,
    /// CPU cores per task (`--cpus-per-task`).
    pub cpus: u32,
    /// The command a user runs once every job is done, to write the report (printed by
    /// `submit.sh`).
    pub report_command: String,
}

/// What [`emit`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Task files written.
    pub tasks: usize,
    /// Dependency stages (job arrays).
    pub stages: usize,
    /// The script to run: `bash <dir>/submit.sh` from the repository root.
    pub submit: PathBuf,
}

/// The stage of every node: 0 for a node without dependencies, else one more than the deepest.
pub fn stages(grid: &Grid) -> Vec<usize> {
    let mut stage = vec![0usize; grid.nodes.len()];
    for (i, n) in grid.nodes.iter().enumerate() {
        stage[i] = n.deps.iter().map(|&d| stage[d] + 1).max().unwrap_or(0);
    }
    stage
}

/// Writes `grid` into `dir` as Slurm job arrays (see the module's documentation).
pub fn emit(grid: &Grid, dir: &Path, opts: &SlurmOptions) -> Result<Emitted> {
    if opts.cpus == 0 {
        return Err(Error::Config("a Slurm task needs at least 1 CPU".into()));
    }
    let tasks = dir.join("tasks");
    std::fs::create_dir_all(&tasks).map_err(|source| Error::io(tasks.clone(), source))?;
    let stage = stages(grid);
    let count = stage.iter().max().map_or(0, |m| m + 1);
    let mut lists = vec![String::new(); count];
    for (i, n) in grid.nodes.iter().enumerate() {
        let name = format!("{i:04}.json");
        let json = serde_json::to_string_pretty(&n.task)
            .map_err(|e| Error::corrupt(tasks.join(&name), e.to_string()))?;
        write_atomic(&tasks.join(&name), format!("{json}\n").as_bytes())?;
        lists[stage[i]].push_str(&format!("tasks/{name}\n"));
    }
    for (k, list) in lists.iter().enumerate() {
        write_atomic(&dir.join(format!("stage{k}.list")), list.as_bytes())?;
    }
    // The resources the device needs: a GPU for a CUDA device only (a CPU job asking for one
    // never starts on a node without GPUs). Slurm shows a job its one GPU as device 0.
    let (gres, device) = match opts.device {
        DeviceSpec::Cuda(_) => ("#SBATCH --gres=gpu:1\n", DeviceSpec::Cuda(0)),
        DeviceSpec::Cpu => ("", DeviceSpec::Cpu),
    };
    let script_name = format!(
        "{}.sbatch",
        opts.job_name
            .strip_prefix("prunebench-")
            .unwrap_or(&opts.job_name)
    );
    let script = format!(
        "#!/usr/bin/env bash\n\
         # One array task per line of $LIST: runs it into the runs directory named in its task file.\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --cpus-per-task={cpus}\n\
         {gres}\
         #SBATCH --output=logs/%x-%A_%a.out\n\
         set -euo pipefail\n\
         cd \"${{SLURM_SUBMIT_DIR}}\"\n\
         TASK=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"${{EMIT_DIR}}/${{LIST}}\")\n\
         exec ${{XTASK:-cargo xtask}} run-task --device {device} \"${{EMIT_DIR}}/${{TASK}}\"\n",
        name = opts.job_name,
        cpus = opts.cpus,
    );
    write_atomic(&dir.join(&script_name), script.as_bytes())?;
    let mut submit = format!(
        "#!/usr/bin/env bash\n\
         # Submit from the repository root (task files name paths relative to it): bash {}/submit.sh\n\
         set -euo pipefail\n\
         mkdir -p logs\n\
         EMIT_DIR={}\n\
         dep=()\n",
        dir.display(),
        dir.display()
    );
    for (k, list) in lists.iter().enumerate() {
        let n = list.lines().count();
        if n == 0 {
            continue;
        }
        let _ = writeln!(
            submit,
            "jid=$(sbatch --parsable \"${{dep[@]}}\" --array=0-{} --export=ALL,EMIT_DIR=$EMIT_DIR,LIST=stage{k}.list $EMIT_DIR/{script_name})\n\
             dep=(--dependency=afterok:$jid)\necho \"stage {k}: job $jid ({n} tasks)\"",
            n - 1
        );
    }
    let _ = writeln!(
        submit,
        "echo \"when done: {} (trains nothing, writes the report)\"",
        opts.report_command
    );
    let submit_path = dir.join("submit.sh");
    write_atomic(&submit_path, submit.as_bytes())?;
    Ok(Emitted {
        tasks: grid.nodes.len(),
        stages: count,
        submit: submit_path,
    })
}
