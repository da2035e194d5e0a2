fn main() -> std::process::ExitCode {
    switchboard::run()
}
