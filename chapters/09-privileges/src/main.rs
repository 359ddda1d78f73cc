fn main() {
    ch01_process::main::<ch09_privileges::Opts>()
}
