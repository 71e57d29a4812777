# bash completion for dstctl(8), the DST administration tool.

_dstctl() {
	local cur prev words cword
	_init_completion || return

	local commands="status lookup list delist cancel queues peers keys resync origins why version help"
	# The first word that is not a flag nor a flag's value is the command.
	local i cmd="" cmdi=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-admin | --admin | -token-file | --token-file | -c | --c) ((i++)) ;;
		-*) ;;
		*)
			cmd=${words[i]}
			cmdi=$i
			break
			;;
		esac
	done

	case $prev in
	-admin | --admin)
		_filedir sock
		return
		;;
	-token-file | --token-file | -c | --c)
		_filedir
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-admin -token-file -c -json -h" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi
	case $cmd in
	list) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-json" -- "$cur")) ;;
	delist) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-allow" -- "$cur")) ;;
	peers)
		if ((cword == cmdi + 1)); then
			COMPREPLY=($(compgen -W "refeed flush test" -- "$cur"))
		fi
		;;
	help)
		((cword == cmdi + 1)) && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	esac
}
complete -F _dstctl dstctl
