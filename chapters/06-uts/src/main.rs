fn main() {
    ch01_process::main::<ch06_uts::Opts>()
}
