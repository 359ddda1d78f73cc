fn main() {
    ch01_process::main::<ch07_cgroups::Opts>()
}
