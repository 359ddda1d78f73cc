fn main() {
    ch01_process::main::<ch02_pid::Opts>()
}
