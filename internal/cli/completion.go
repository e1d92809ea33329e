package cli

import "github.com/spf13/cobra"

// completionExamples are the examples of the "completion" subcommands:
// loading a script into the current shell, and installing the script that
// release archives carry in completions/.
var completionExamples = map[string]string{
	"bash": `  # Current shell
  source <(stellaops-cli completion bash)

  # Every new shell (bash-completion 2)
  stellaops-cli completion bash | sudo tee /usr/share/bash-completion/completions/stellaops-cli >/dev/null

  # From a release archive
  sudo install -m 0644 completions/stellaops-cli.bash /usr/share/bash-completion/completions/stellaops-cli`,
	"zsh": `  # Every new shell (the folder must be on $fpath, before compinit runs)
  stellaops-cli completion zsh > "${fpath[1]}/_stellaops-cli"

  # From a release archive
  sudo install -m 0644 completions/stellaops-cli.zsh /usr/local/share/zsh/site-functions/_stellaops-cli`,
	"fish": `  # Current shell
  stellaops-cli completion fish | source

  # Every new shell
  stellaops-cli completion fish > ~/.config/fish/completions/stellaops-cli.fish`,
	"powershell": `  # Current shell
  stellaops-cli completion powershell | Out-String | Invoke-Expression

  # Every new shell: add the line above to $PROFILE`,
}

// addCompletionCmd adds cobra's "completion" command now rather than at
// execution, so that the man pages and the help describe it, and gives each
// shell's subcommand its examples.
func addCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  source <(stellaops-cli completion bash)
  stellaops-cli completion zsh > "${fpath[1]}/_stellaops-cli"
  stellaops-cli completion fish | source
  stellaops-cli completion powershell | Out-String | Invoke-Expression`
		for _, sub := range c.Commands() {
			if ex, ok := completionExamples[sub.Name()]; ok {
				sub.Example = ex
			}
		}
	}
}
