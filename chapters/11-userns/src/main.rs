fn main() {
    ch01_process::main::<ch11_userns::Opts>()
}
