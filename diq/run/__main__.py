from diq.run.frame import main

if __name__ == "__main__":
    main()
