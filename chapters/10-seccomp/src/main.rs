fn main() {
    ch01_process::main::<ch10_seccomp::Opts>()
}
